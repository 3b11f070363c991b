"""Data modules (one per dataset), transforms, splits and the synthetic demo data."""

from fgssl.data.aptos import APTOS2019DataModule
from fgssl.data.base import ImageClassificationDataModule
from fgssl.data.dataset import ImageDataset
from fgssl.data.demo import DemoAPTOSDataModule, make_demo_aptos, render_fundus
from fgssl.data.io import read_rgb
from fgssl.data.transforms import default_pipelines

__all__ = [
    "APTOS2019DataModule",
    "DemoAPTOSDataModule",
    "ImageClassificationDataModule",
    "ImageDataset",
    "default_pipelines",
    "make_demo_aptos",
    "read_rgb",
    "render_fundus",
]
