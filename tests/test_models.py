"""FGSSLNet and BaselineNet: shapes, truncated stages, weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from fgssl import BaselineNet, FGSSLNet, jigsaw
from fgssl.errors import ConfigError, PretrainedWeightsError
from fgssl.models.backbone import fixed_input_size


@pytest.mark.parametrize(
    ("backbone", "size"),
    [
        ("resnet18", 224),
        ("resnet18", 256),
        ("resnet18", 448),
        ("resnet50", 224),
        ("efficientnet_b0", 224),
        ("convnext_atto", 256),
    ],
)
def test_fgssl_net_output_shapes(backbone: str, size: int) -> None:
    net = FGSSLNet(backbone, num_classes=5, feat_dim=32, hidden_dim=48).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, size, size))
    assert len(out.logits) == len(out.embeddings) == 4
    assert all(logits.shape == (2, 5) for logits in out.logits)
    assert all(embedding.shape == (2, 32) for embedding in out.embeddings)
    torch.testing.assert_close(out.combined, sum(out.logits))
    assert out.concat is out.logits[-1]


@pytest.mark.parametrize("k", [1, 2, 4])
def test_number_of_granularities(k: int) -> None:
    net = FGSSLNet("resnet18", num_classes=3, num_granularities=k, feat_dim=8, hidden_dim=8)
    assert net.stage_names == [f"stage{i + 1}" for i in range(k)] + ["concat"]
    assert len(net(torch.randn(2, 3, 64, 64)).logits) == k + 1


def test_too_many_granularities_for_the_backbone() -> None:
    with pytest.raises(ConfigError, match="fewer feature stages than the 7 tapped stages"):
        FGSSLNet("resnet18", num_classes=3, num_granularities=7)


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_b0"])
def test_stage_outputs_equal_the_full_forward(backbone: str) -> None:
    torch.manual_seed(0)
    net = FGSSLNet(backbone, num_classes=4, feat_dim=16, hidden_dim=16)
    x = torch.randn(4, 3, 64, 64)
    for mode in (net.train, net.eval):
        mode()
        with torch.no_grad():
            full = net(x)
            for k in range(net.num_stages):
                stage = net.forward_stage(x, k)
                torch.testing.assert_close(stage.embedding, full.embeddings[k])
                torch.testing.assert_close(stage.logits, full.logits[k])


def test_a_granularity_stage_runs_no_deeper_backbone_stage_and_no_other_block() -> None:
    net = FGSSLNet("resnet18", num_classes=4, feat_dim=8, hidden_dim=8)
    calls: dict[str, int] = {}

    def count(name: str):
        def hook(*_: object) -> None:
            calls[name] = calls.get(name, 0) + 1

        return hook

    resnet = net.backbone.features.model
    for name in ("layer2", "layer3", "layer4"):
        getattr(resnet, name).register_forward_hook(count(name))
    for index, block in enumerate(net.blocks):
        block.register_forward_hook(count(f"block{index}"))
    net.forward_stage(torch.randn(2, 3, 64, 64), 0)
    assert calls == {"layer2": 1, "block0": 1}
    calls.clear()
    net.forward_stage(torch.randn(2, 3, 64, 64), 1)
    assert calls == {"layer2": 1, "layer3": 1, "block1": 1}
    calls.clear()
    net.forward_stage(torch.randn(2, 3, 64, 64), 3)
    assert calls == {"layer2": 1, "layer3": 1, "layer4": 1, "block0": 1, "block1": 1, "block2": 1}


def test_projector_maps_embeddings() -> None:
    net = FGSSLNet("resnet18", num_classes=3, feat_dim=16, hidden_dim=16, projector=[32, 24])
    embedding = net.forward_stage(torch.randn(4, 3, 64, 64), 1).embedding
    assert net.project(embedding, 1).shape == (4, 24)
    plain = FGSSLNet("resnet18", num_classes=3, feat_dim=16, hidden_dim=16)
    assert plain.project(embedding, 1) is embedding


@pytest.mark.parametrize("network", [FGSSLNet, BaselineNet])
def test_backbone_features_are_timms_pooled_features(network: type) -> None:
    """The SSL protocols' representation: timm's own global-average-pooled features."""
    net = network("resnet18", num_classes=3).eval()
    reference = timm.create_model("resnet18", num_classes=0).eval()  # avg pool, no classifier
    source = net.backbone.features.model if network is FGSSLNet else net.model
    missing, _ = reference.load_state_dict(source.state_dict(), strict=False)
    assert not missing
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.backbone_features(x), reference(x))


def test_baseline_net() -> None:
    net = BaselineNet("resnet18", num_classes=7)
    out = net(torch.randn(3, 3, 64, 64))
    assert out.logits[0].shape == (3, 7) and out.embeddings[0].shape == (3, 512)
    assert net.stage_names == ("whole",)
    backbone = {id(p) for p in net.backbone_parameters()}
    assert all(id(p) not in backbone for p in net.model.get_classifier().parameters())
    assert len(backbone) == len(list(net.parameters())) - 2  # all but fc weight and bias


def test_pretrained_weights_offline_fail_with_advice() -> None:
    # conftest sets HF_HUB_OFFLINE=1: the hub is unreachable, as on a cluster node.
    with pytest.raises(PretrainedWeightsError, match=r"pretrained_weights=.*pretrained=false"):
        FGSSLNet("resnet18", num_classes=3, pretrained=True)


def test_local_pretrained_weights_are_loaded(tmp_path: Path) -> None:
    reference = timm.create_model("resnet18", pretrained=False)
    weights = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), weights)
    net = FGSSLNet("resnet18", num_classes=3, pretrained=True, pretrained_weights=str(weights))
    loaded = net.backbone.features.model.layer3[0].conv1.weight
    torch.testing.assert_close(loaded, reference.layer3[0].conv1.weight)
    baseline = BaselineNet(
        "resnet18", num_classes=3, pretrained=True, pretrained_weights=str(weights)
    )
    torch.testing.assert_close(baseline.model.conv1.weight, reference.conv1.weight)


def test_missing_local_weights_file(tmp_path: Path) -> None:
    with pytest.raises(PretrainedWeightsError, match=r"nowhere\.pth.*does not exist"):
        FGSSLNet("resnet18", 3, pretrained=True, pretrained_weights=str(tmp_path / "nowhere.pth"))


def test_unknown_backbone() -> None:
    with pytest.raises(ConfigError, match="unknown timm backbone 'resnet_nope'"):
        FGSSLNet("resnet_nope", num_classes=3)


# -------------------------------------------------- backbones with a fixed input size
def test_fixed_input_sizes_come_from_timm() -> None:
    assert fixed_input_size("vit_tiny_patch16_224") == 224
    assert fixed_input_size("swin_tiny_patch4_window7_224") == 224
    assert fixed_input_size("resnet18") is None


def test_a_vit_is_built_for_the_configured_image_size() -> None:
    with pytest.raises(AssertionError, match="doesn't match model"):  # timm's, without it
        FGSSLNet("vit_tiny_patch16_224", num_classes=3)(torch.randn(2, 3, 64, 64))
    torch.manual_seed(0)
    net = FGSSLNet("vit_tiny_patch16_224", num_classes=3, feat_dim=8, hidden_dim=8, image_size=64)
    x = torch.randn(2, 3, 64, 64)
    # a ViT's taps are its last three blocks, all at one resolution: 64 px / 16 px patches
    assert [f.shape[-2:] for f in net.backbone(x)] == [(4, 4)] * 3
    assert list(net.backbone.features.feature_info.reduction()) == [16, 16, 16]
    net.eval()
    with torch.no_grad():
        full = net(x)
        for k in range(net.num_stages):
            torch.testing.assert_close(net.forward_stage(x, k).logits, full.logits[k])
    net.train()  # a training stage: a puzzle through its head, and back
    net.forward_stage(jigsaw(x, 8), 0).logits.sum().backward()
    baseline = BaselineNet("vit_tiny_patch16_224", num_classes=3, image_size=96)
    assert baseline(torch.randn(2, 3, 96, 96)).logits[0].shape == (2, 3)


def test_a_cnn_ignores_the_image_size() -> None:
    net = FGSSLNet("resnet18", num_classes=3, feat_dim=8, hidden_dim=8, image_size=64)
    assert len(net(torch.randn(2, 3, 96, 96)).logits) == 4


@pytest.mark.parametrize(
    "backbone",
    [
        "levit_128s",  # builds for 100 px, fails in the forward pass (attention bias sizes)
        "xcit_nano_12_p16_224",  # refuses to build: 16 px patches do not divide 100 px
    ],
)
def test_a_size_the_backbone_cannot_take_is_refused_naming_its_size(backbone: str) -> None:
    with pytest.raises(ConfigError, match=r"data\.image_size=100 .*set data\.image_size=224"):
        FGSSLNet(backbone, num_classes=3, feat_dim=8, hidden_dim=8, image_size=100)


def test_pretrained_vit_weights_are_resampled_to_the_image_size(tmp_path: Path) -> None:
    reference = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    weights = tmp_path / "vit.pth"
    torch.save(reference.state_dict(), weights)
    net = BaselineNet(
        "vit_tiny_patch16_224",
        num_classes=3,
        pretrained=True,
        pretrained_weights=str(weights),
        image_size=64,
    )
    torch.testing.assert_close(net.model.patch_embed.proj.weight, reference.patch_embed.proj.weight)
    assert net.model.pos_embed.shape[1] == 1 + 4 * 4  # class token + 4x4 patches
    # unreachable weights are still reported as such, not as a size problem
    with pytest.raises(PretrainedWeightsError, match="pretrained=false"):
        BaselineNet("vit_tiny_patch16_224", num_classes=3, pretrained=True, image_size=64)
