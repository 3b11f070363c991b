"""fgssl: Fine-Grained Self-Supervised Learning with jigsaw puzzles for medical images."""

import os

# OpenMP threads that spin while they wait make CPU training many times slower when other
# work shares the cores (13x with one core busy, scripts/wait_policy.py); libgomp's default
# spins for about 3 ms. A short spin (GOMP_SPINCOUNT=1000, about 10 us) keeps that
# protection and, unlike OMP_WAIT_POLICY=PASSIVE (never spin), costs almost nothing on an
# idle machine. Read when torch loads OpenMP, so only if fgssl is imported first (the
# commands); a wait policy or spin count the user set is kept.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

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
