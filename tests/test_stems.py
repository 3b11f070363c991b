"""The small-image (cifar) stem: no downsampling before the first block, in every family it
applies to; refused, naming the backbone, elsewhere."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fgssl.errors import ConfigError
from fgssl.models import BaselineNet, FGSSLNet, create_timm_model


@pytest.mark.parametrize(
    ("backbone", "extra_factor"),
    [
        ("resnet18", 4),  # 7x7 stride-2 conv + stride-2 max-pool -> 3x3 stride 1, no pool
        ("resnet18d", 4),  # deep stem: first conv stride 1, no pool
        ("efficientnet_b0", 2),  # conv_stem stride 2 -> 1
        ("convnext_atto", 4),  # 4x4 stride-4 patchify -> 3x3 stride 1
    ],
)
def test_cifar_stem_keeps_the_resolution_the_stem_removed(backbone: str, extra_factor: int) -> None:
    image = torch.zeros(2, 3, 32, 32)
    standard = FGSSLNet(backbone, 3, feat_dim=8, hidden_dim=8).eval()
    small = FGSSLNet(backbone, 3, feat_dim=8, hidden_dim=8, stem="cifar").eval()
    with torch.no_grad():
        before = [f.shape[-1] for f in standard.backbone(image)]
        after = [f.shape[-1] for f in small.backbone(image)]
        # strides 8, 16, 32 of the tapped stages become 8/factor, ...: hand-computed sides
        assert before == [32 // 8, 32 // 16, 32 // 32]
        assert after == [32 * extra_factor // s for s in (8, 16, 32)]
        # the early-stopping pass of a stage sees the same stem
        assert small.backbone.forward_until(image, 0).shape[-1] == after[0]


def test_cifar_stem_of_a_resnet_is_medmnists() -> None:
    """MedMNIST2D/models.py: conv1 3x3, stride 1, padding 1, no bias; no max-pool."""
    net = BaselineNet("resnet18", 7, stem="cifar")
    conv1 = net.model.conv1
    assert isinstance(conv1, nn.Conv2d)
    assert (conv1.kernel_size, conv1.stride, conv1.padding) == ((3, 3), (1, 1), (1, 1))
    assert conv1.bias is None and (conv1.in_channels, conv1.out_channels) == (3, 64)
    assert isinstance(net.model.maxpool, nn.Identity)
    assert net(torch.zeros(2, 3, 28, 28)).combined.shape == (2, 7)


def test_imagenet_stem_is_timms_model() -> None:
    torch.manual_seed(0)
    ours = create_timm_model("resnet18", stem="imagenet")
    assert isinstance(ours.conv1, nn.Conv2d) and ours.conv1.stride == (2, 2)
    assert isinstance(ours.maxpool, nn.MaxPool2d)


def test_stem_refused_for_another_family_and_unknown_names() -> None:
    with pytest.raises(ConfigError, match=r"'vit_tiny_patch16_224'.*model.net.stem=imagenet"):
        BaselineNet("vit_tiny_patch16_224", 3, stem="cifar", image_size=32)
    with pytest.raises(ConfigError, match=r"model.net.stem='small'.*\['imagenet', 'cifar'\]"):
        BaselineNet("resnet18", 3, stem="small")


def test_stem_in_the_shipped_configs(compose_config) -> None:  # type: ignore[no-untyped-def]
    cfg = compose_config("+experiment=demo")
    assert cfg.model.net.stem == "imagenet"
    cfg = compose_config("+experiment=medmnist", "data.root=/nowhere")
    assert cfg.model.net.stem == "cifar" and cfg.model.net.backbone == "resnet18"
