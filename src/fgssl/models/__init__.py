"""Networks: FGSSLNet (the method) and BaselineNet (the reference point)."""

from fgssl.models.backbone import TappedBackbone, create_timm_model
from fgssl.models.base import NetOutput, StagedNet, StageOutput
from fgssl.models.baseline import BaselineNet
from fgssl.models.fgssl_net import FGSSLNet

__all__ = [
    "BaselineNet",
    "FGSSLNet",
    "NetOutput",
    "StageOutput",
    "StagedNet",
    "TappedBackbone",
    "create_timm_model",
]
