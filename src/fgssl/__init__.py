"""fgssl: Fine-Grained Self-Supervised Learning with jigsaw puzzles for medical images."""

import os

# OpenMP threads that spin while they wait make CPU training many times slower when other
# work shares the cores (measured 13x, scripts/wait_policy.py); sleeping costs little when
# it does not. Read when torch loads OpenMP, so only if fgssl is imported first (the
# commands); a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from fgssl._version import __version__
from fgssl.errors import FgsslError, NonFiniteLossError
from fgssl.losses import BarlowTwinsLoss
from fgssl.models import BaselineNet, FGSSLNet, NetOutput, StageOutput
from fgssl.module import FGSSLModule
from fgssl.ops.jigsaw import jigsaw
from fgssl.stages import Stage, plan_stages

__all__ = [
    "BarlowTwinsLoss",
    "BaselineNet",
    "FGSSLModule",
    "FGSSLNet",
    "FgsslError",
    "NetOutput",
    "NonFiniteLossError",
    "Stage",
    "StageOutput",
    "__version__",
    "jigsaw",
    "plan_stages",
]
