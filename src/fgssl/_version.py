"""The version of fgssl (its own module so that any module can read it without importing
the package root, which imports the LightningModule)."""

__version__ = "0.1.0"
