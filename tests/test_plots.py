"""Figures: confusion matrix, training curves, jigsaw schedule, Grad-CAM of every head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from matplotlib.image import imread

from fgssl import BaselineNet
from fgssl.errors import DataNotFoundError
from fgssl.plots import (
    gradcam_maps,
    plot_confusion_matrices,
    plot_jigsaw_schedule,
    plot_training_curves,
)
from fgssl.plots.gradcam import (
    NO_ACTIVATION,
    GradCAMUnavailable,
    HeadLogits,
    gradcam_figure,
    tokens_to_map,
)
from fgssl.plots.run import _Drawing, pick_images
from helpers import one_thread, tiny_net

single_thread = pytest.fixture(autouse=True)(one_thread)


def image_size(path: Path) -> tuple[int, int]:
    height, width = imread(path).shape[:2]
    return width, height


def test_confusion_matrix_figure(tmp_path: Path) -> None:
    matrices = {"combined": [[3, 1], [0, 4]], "concat": [[2, 2], [1, 3]]}
    path = plot_confusion_matrices(matrices, ["benign", "malignant"], tmp_path / "cm.png")
    width, height = image_size(path)
    assert width > height > 100  # two panels side by side
    with pytest.raises(ValueError, match=r"is \(2, 2\), expected \(3, 3\)"):
        plot_confusion_matrices(matrices, ["a", "b", "c"], tmp_path / "bad.png")


def test_training_curves_from_metrics_csv(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "finetune").mkdir(parents=True)
    rows = []
    for epoch in range(3):
        rows.append({"epoch": epoch, "step": epoch * 4, "finetune/stage1_loss_step": 1.0})
        rows.append(
            {
                "epoch": epoch,
                "step": epoch * 4 + 3,
                "finetune/stage1_loss_epoch": 1.5 - epoch / 4,
                "finetune/concat_loss_epoch": 1.2 - epoch / 4,
            }
        )
        rows.append({"epoch": epoch, "step": epoch * 4 + 3, "val/combined/kappa": epoch / 3})
    pd.DataFrame(rows).to_csv(run / "finetune" / "metrics.csv", index=False)
    path = plot_training_curves(run, tmp_path / "curves.png", monitor="val/combined/kappa")
    width, _ = image_size(path)
    assert width > 500  # the loss panel and the validation panel
    with pytest.raises(DataNotFoundError, match="logger=csv"):
        plot_training_curves(tmp_path / "empty", tmp_path / "none.png")


def test_jigsaw_schedule_figure_shows_each_granularity(tmp_path: Path) -> None:
    images = torch.randn(2, 3, 32, 32)
    path = plot_jigsaw_schedule(images, [8, 4, 2], tmp_path / "jigsaw.png")
    width, height = image_size(path)
    assert width > 1.5 * height  # 4 columns, 2 rows


def test_head_logits_are_each_heads_and_their_sum() -> None:
    net = tiny_net().eval()
    x = torch.randn(2, 3, 32, 32)
    output = net(x)
    for index, name in enumerate(net.stage_names):
        torch.testing.assert_close(HeadLogits(net, name)(x), output.logits[index])
    torch.testing.assert_close(HeadLogits(net, "combined")(x), output.combined)
    with pytest.raises(ValueError, match="unknown head"):
        HeadLogits(net, "stage9")


def manual_gradcam(net, images: torch.Tensor, stage: int, targets: list[int]) -> np.ndarray:
    """Grad-CAM by hand at the last activation of granularity block ``stage``: channel
    weights = spatial mean of the gradient, map = ReLU of the weighted sum, upsampled."""
    captured = {}

    def keep(module, inputs, output):
        captured["activation"] = output
        output.register_hook(lambda grad: captured.__setitem__("gradient", grad))

    handle = net.blocks[stage][-1].register_forward_hook(keep)
    logits = net(images).logits[stage]
    handle.remove()
    logits[torch.arange(len(targets)), torch.tensor(targets)].sum().backward()
    weights = captured["gradient"].mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * captured["activation"]).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return cam[:, 0].numpy()


def test_gradcam_of_a_head_is_read_at_its_own_stage() -> None:
    torch.manual_seed(0)
    net = tiny_net().eval()
    images = torch.randn(3, 3, 64, 64)
    targets = [0, 1, 2]
    maps = gradcam_maps(net, images, targets)
    assert list(maps) == ["stage1", "stage2", "stage3", "concat", "combined"]
    for head, values in maps.items():
        assert values.shape == (3, 64, 64), head
        assert values.min() >= 0.0 and values.max() <= 1.0 + 1e-6, head
    for stage in (0, 1):
        expected = manual_gradcam(net, images, stage, targets)
        for ours, reference in zip(maps[f"stage{stage + 1}"], expected, strict=True):
            if reference.max() > 0:
                assert np.corrcoef(ours.ravel(), reference.ravel())[0, 1] > 0.95


def test_gradcam_of_the_baseline_uses_its_last_stage() -> None:
    net = BaselineNet("resnet18", num_classes=3)
    maps = gradcam_maps(net, torch.randn(2, 3, 64, 64), [0, 2])
    assert list(maps) == ["combined"] and maps["combined"].shape == (2, 64, 64)


def test_pick_images_takes_one_per_class_first() -> None:
    assert pick_images([2, 2, 0, 1, 0, 1], 4) == [2, 3, 0, 1]
    assert pick_images([1, 1], 4) == [0, 1]


def test_a_finished_run_has_its_figures(tiny_run: Path) -> None:
    for name in ("training_curves", "jigsaw_schedule", "gradcam", "confusion_matrix"):
        path = tiny_run / f"{name}.png"
        assert path.is_file() and image_size(path)[0] > 300, name


def test_an_all_zero_gradcam_map_is_labelled_not_coloured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(0)
    net = tiny_net().eval()
    images = torch.randn(2, 3, 32, 32)
    ramp = np.linspace(0.0, 1.0, 32 * 32, dtype=np.float32).reshape(32, 32)
    maps = {
        "stage1": np.stack([np.zeros((32, 32), np.float32), ramp]),  # image 0: no activation
        "combined": np.stack([ramp, ramp]),
    }
    monkeypatch.setattr("fgssl.plots.gradcam.gradcam_maps", lambda *_: maps)
    figure = gradcam_figure(net, images)
    axes = np.array(figure.axes).reshape(2, 3)  # rows: images; columns: image, stage1, combined
    labelled = [[NO_ACTIVATION in [t.get_text() for t in ax.texts] for ax in row] for row in axes]
    assert labelled == [[False, True, False], [False, False, False]]
    # the zero map's panel is the image itself, the others a heatmap over it
    shown = [np.asarray(ax.images[0].get_array()) for ax in axes[0]]
    np.testing.assert_array_equal(shown[1], shown[0])
    assert not np.array_equal(shown[2], shown[0])


def test_tokens_to_map_lays_out_each_kind_of_layer_output() -> None:
    nchw = torch.randn(2, 6, 3, 4)
    assert tokens_to_map(nchw, channels=6) is nchw
    nhwc = nchw.permute(0, 2, 3, 1).contiguous()  # Swin's stages
    assert torch.equal(tokens_to_map(nhwc, channels=6), nchw)
    # ViT: a class token, then the 3 x 4 patches row by row
    patches = nchw.flatten(2).transpose(1, 2)  # (2, 12, 6)
    tokens = torch.cat([torch.full((2, 1, 6), 99.0), patches], dim=1)
    assert torch.equal(tokens_to_map(tokens, channels=6, prefix_tokens=1, grid=(3, 4)), nchw)
    square = torch.randn(2, 2 + 16, 6)  # two prefix tokens, no grid given: 4 x 4
    laid_out = tokens_to_map(square, channels=6, prefix_tokens=2)
    assert torch.equal(laid_out[:, :, 1, 2], square[:, 2 + 1 * 4 + 2])
    with pytest.raises(GradCAMUnavailable, match=r"a \(2, 13, 6\) output"):
        tokens_to_map(torch.randn(2, 13, 6), channels=6, prefix_tokens=1)  # 12 tokens, no grid
    with pytest.raises(GradCAMUnavailable):
        tokens_to_map(torch.randn(2, 5), channels=5)


def test_gradcam_of_a_vit_baseline_reads_its_last_blocks_patch_tokens() -> None:
    """A class-token ViT (timm's vit_tiny at 32 px: 2 x 2 patches) is explained at its last
    block's input; the map equals Grad-CAM by hand on those patch tokens."""
    torch.manual_seed(0)
    net = BaselineNet("vit_tiny_patch16_224", num_classes=3, image_size=32).eval()
    images, targets = torch.randn(2, 3, 32, 32), [0, 2]
    maps = gradcam_maps(net, images, targets)
    assert list(maps) == ["combined"] and maps["combined"].shape == (2, 32, 32)
    captured = {}

    def keep(module, inputs, output):  # type: ignore[no-untyped-def]
        captured["activation"] = output
        output.register_hook(lambda grad: captured.__setitem__("gradient", grad))

    handle = net.model.blocks[-1].norm1.register_forward_hook(keep)
    logits = net(images).combined
    handle.remove()
    logits[torch.arange(2), torch.tensor(targets)].sum().backward()
    activation, gradient = (captured[k][:, 1:].transpose(1, 2) for k in ("activation", "gradient"))
    cam = F.relu((gradient.mean(dim=2, keepdim=True) * activation).sum(dim=1)).detach()
    expected = F.interpolate(cam.reshape(2, 1, 2, 2), size=(32, 32), mode="bilinear")[:, 0]
    for ours, reference in zip(maps["combined"], expected.numpy(), strict=True):
        assert reference.max() > 0
        assert np.corrcoef(ours.ravel(), reference.ravel())[0, 1] > 0.95


def test_a_network_without_a_gradcam_layout_is_skipped_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def unavailable() -> Path:
        raise GradCAMUnavailable("a (2, 13, 6) output cannot be laid out")

    drawing = _Drawing(tmp_path)
    with caplog.at_level("WARNING", logger="fgssl.plots.run"):
        drawing.draw("the Grad-CAM maps", unavailable)
    (record,) = caplog.records
    assert record.getMessage() == (
        f"the Grad-CAM maps of {tmp_path} skipped: a (2, 13, 6) output cannot be laid out"
    )
    assert record.exc_info is None and drawing.written == []
