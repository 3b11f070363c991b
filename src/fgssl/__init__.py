"""fgssl: Fine-Grained Self-Supervised Learning with jigsaw puzzles for medical images."""

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
