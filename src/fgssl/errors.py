"""Errors in the user's data, configuration or environment, each saying what to fix.

The command-line tools print these as one clear message instead of a traceback.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataLayoutError",
    "DataNotFoundError",
    "FgsslError",
    "ImageReadError",
    "MissingImagesError",
    "NonFiniteLossError",
    "PretrainedWeightsError",
    "RunDirectoryInUseError",
]


class FgsslError(Exception):
    """Base class of fgssl's user-facing errors."""


class ConfigError(FgsslError, ValueError):
    """A configuration value is missing, unknown or out of range."""


class RunDirectoryInUseError(ConfigError):
    """The run (or sweep) directory already holds another run: a run directory is never
    reused. Nothing may be written into it, not even the failure record."""


class CheckpointError(FgsslError, ValueError):
    """A checkpoint is missing, unreadable, or does not fit the run or the code."""


class DataNotFoundError(FgsslError, FileNotFoundError):
    """A dataset folder or file is not where it should be."""


class MissingImagesError(DataNotFoundError):
    """Images listed in a CSV have no file."""


class DataLayoutError(FgsslError, ValueError):
    """The files of a dataset are not laid out or formatted as expected."""


class ImageReadError(FgsslError, OSError):
    """An image file is unreadable, corrupt or truncated."""


class PretrainedWeightsError(FgsslError, RuntimeError):
    """ImageNet weights were asked for but could not be loaded."""


class NonFiniteLossError(FgsslError, FloatingPointError):
    """A stage's loss became NaN or infinite."""
