"""Data modules (one per dataset), transforms, splits, the image cache and the demo data."""

from fgssl.data.aptos import APTOS2019DataModule
from fgssl.data.base import ImageClassificationDataModule
from fgssl.data.cache import ImageCache
from fgssl.data.csvfile import CSVDataModule
from fgssl.data.dataset import ImageDataset
from fgssl.data.demo import DemoAPTOSDataModule, make_demo_aptos, render_fundus
from fgssl.data.folder import FolderDataModule
from fgssl.data.io import read_rgb
from fgssl.data.isic2017 import ISIC2017DataModule
from fgssl.data.isic2018 import ISIC2018DataModule
from fgssl.data.transforms import default_pipelines, load_pipelines

__all__ = [
    "APTOS2019DataModule",
    "CSVDataModule",
    "DemoAPTOSDataModule",
    "FolderDataModule",
    "ISIC2017DataModule",
    "ISIC2018DataModule",
    "ImageCache",
    "ImageClassificationDataModule",
    "ImageDataset",
    "default_pipelines",
    "load_pipelines",
    "make_demo_aptos",
    "read_rgb",
    "render_fundus",
]
