"""Data modules (one per dataset), transforms, splits, the image cache and the demo data."""

from fgssl.data.aptos import APTOS2019DataModule
from fgssl.data.base import ImageClassificationDataModule
from fgssl.data.cache import ImageCache
from fgssl.data.csvfile import CSVDataModule
from fgssl.data.dataset import ImageDataset
from fgssl.data.ddr import DDRDataModule
from fgssl.data.demo import DemoAPTOSDataModule, make_demo_aptos, render_fundus
from fgssl.data.eyepacs import EyePACSDataModule
from fgssl.data.folder import FolderDataModule
from fgssl.data.idrid import IDRiDDataModule
from fgssl.data.io import read_rgb
from fgssl.data.isic2017 import ISIC2017DataModule
from fgssl.data.isic2018 import ISIC2018DataModule
from fgssl.data.isic2019 import ISIC2019DataModule
from fgssl.data.isic2020 import ISIC2020DataModule
from fgssl.data.medmnist import MedMNISTDataModule
from fgssl.data.messidor2 import Messidor2DataModule
from fgssl.data.transforms import default_pipelines, load_pipelines

__all__ = [
    "APTOS2019DataModule",
    "CSVDataModule",
    "DDRDataModule",
    "DemoAPTOSDataModule",
    "EyePACSDataModule",
    "FolderDataModule",
    "IDRiDDataModule",
    "ISIC2017DataModule",
    "ISIC2018DataModule",
    "ISIC2019DataModule",
    "ISIC2020DataModule",
    "ImageCache",
    "ImageClassificationDataModule",
    "ImageDataset",
    "MedMNISTDataModule",
    "Messidor2DataModule",
    "default_pipelines",
    "load_pipelines",
    "make_demo_aptos",
    "read_rgb",
    "render_fundus",
]
