"""fgssl: Fine-Grained Self-Supervised Learning with jigsaw puzzles for medical images."""

import os

# OpenMP threads that spin while they wait make CPU training many times slower when other
# work shares the cores (13x with the other core training, scripts/wait_policy.py); libgomp
# (PyTorch's OpenMP on Linux) spins for about 3 ms by default. A short spin
# (GOMP_SPINCOUNT=1000, about 10 us) keeps the protection of never spinning
# (OMP_WAIT_POLICY=PASSIVE) without its cost on an idle machine. KMP_BLOCKTIME=0 is the
# PASSIVE of LLVM's and Intel's OpenMP (macOS wheels), which libgomp does not read. Read
# when torch loads OpenMP, so only if fgssl is imported first (the commands); whatever the
# user set is kept.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")
    os.environ.setdefault("KMP_BLOCKTIME", "0")

from typing import TYPE_CHECKING, Any

from fgssl._version import __version__
from fgssl.errors import FgsslError, NonFiniteLossError
from fgssl.losses import BarlowTwinsLoss
from fgssl.models import BaselineNet, FGSSLNet, NetOutput, StageOutput
from fgssl.module import FGSSLModule
from fgssl.ops.jigsaw import jigsaw
from fgssl.stages import Stage, plan_stages

if TYPE_CHECKING:
    from fgssl.api import Model, TrainedRun, load, predict, train

_API = ("Model", "TrainedRun", "load", "predict", "train")
"""The Python entry points (:mod:`fgssl.api`), imported when first used: they bring the
pipeline, Hydra and the evaluation, which ``import fgssl`` for the network alone does not
need."""


def __getattr__(name: str) -> Any:
    if name in _API:
        from fgssl import api

        return getattr(api, name)
    raise AttributeError(f"module 'fgssl' has no attribute {name!r}")


__all__ = [
    "BarlowTwinsLoss",
    "BaselineNet",
    "FGSSLModule",
    "FGSSLNet",
    "FgsslError",
    "Model",
    "NetOutput",
    "NonFiniteLossError",
    "Stage",
    "StageOutput",
    "TrainedRun",
    "__version__",
    "jigsaw",
    "load",
    "plan_stages",
    "predict",
    "train",
]
