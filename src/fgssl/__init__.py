"""fgssl: Fine-Grained Self-Supervised Learning with jigsaw puzzles for medical images."""

from fgssl.errors import FgsslError, NonFiniteLossError
from fgssl.losses import BarlowTwinsLoss
from fgssl.models import BaselineNet, FGSSLNet, NetOutput, StageOutput
from fgssl.module import FGSSLModule
from fgssl.ops.jigsaw import jigsaw
from fgssl.stages import Stage, plan_stages

__version__ = "0.1.0"

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
