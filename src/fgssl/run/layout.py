"""The run directory's layout, under its former name: :mod:`fgssl.rundir` (the
foundation, where every layer may read it) defines it; code written against
``fgssl.run.layout`` still imports."""

from fgssl.rundir import *  # noqa: F403
from fgssl.rundir import __all__ as __all__
