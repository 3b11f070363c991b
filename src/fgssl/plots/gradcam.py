"""Grad-CAM heatmaps of each head of a network and of its combined prediction.

Head ``k`` of an :class:`~fgssl.models.FGSSLNet` sees only tapped backbone stage ``k``
through its granularity block, so its heatmap is taken at that block's last activation
(before max pooling); the concat head and the combined prediction use every block's.
A :class:`~fgssl.models.BaselineNet` is explained at its backbone's last stage; a
transformer's tokens are laid out as a (B, C, H, W) map first (:func:`tokens_to_map`), and
a ViT with prefix (class) tokens is explained at its last block's input, since its last
block's output reaches the logits through the class token alone (pytorch-grad-cam's ViT
recipe). A layer whose output cannot be laid out so raises :class:`GradCAMUnavailable`.

pytorch-grad-cam scales each map to [0, 1] by its own minimum and maximum, so a map
without any positive gradient-weighted activation comes out all zero. Colouring it would
give a uniform wash that reads as attention everywhere: such a panel shows the image
alone, labelled :data:`NO_ACTIVATION`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from fgssl.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from fgssl.models.base import StagedNet
from fgssl.models.baseline import BaselineNet
from fgssl.models.fgssl_net import FGSSLNet
from fgssl.plots.jigsaw import to_display

__all__ = [
    "NO_ACTIVATION",
    "GradCAMUnavailable",
    "HeadLogits",
    "gradcam_figure",
    "gradcam_heads",
    "gradcam_maps",
    "gradcam_reshape",
    "plot_gradcam",
    "tokens_to_map",
]

NO_ACTIVATION = "no activation\n(Grad-CAM all zero)"
"""The label of a panel whose Grad-CAM map is all zero (drawn without a heatmap)."""


class GradCAMUnavailable(ValueError):
    """The layer Grad-CAM would read gives no (B, C, H, W) map for this network."""


class HeadLogits(nn.Module):
    """``net`` returning one head's logits (``head`` = a stage name or ``"combined"``)."""

    def __init__(self, net: StagedNet, head: str):
        super().__init__()
        names = list(net.stage_names)
        if head != "combined" and head not in names:
            raise ValueError(f"unknown head {head!r}: expected one of {[*names, 'combined']}")
        self.net = net
        self.index = None if head == "combined" else names.index(head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self.net(x)
        return output.combined if self.index is None else output.logits[self.index]


def gradcam_heads(net: StagedNet) -> dict[str, list[nn.Module]]:
    """The heads to explain and the layers Grad-CAM reads for each, in display order."""
    if isinstance(net, FGSSLNet):
        last_activation = [cast(nn.Sequential, block)[-1] for block in net.blocks]
        heads: dict[str, list[nn.Module]] = {
            name: [last_activation[k]] for k, name in enumerate(net.stage_names[:-1])
        }
        heads[net.stage_names[-1]] = last_activation
        heads["combined"] = last_activation
        return heads
    if isinstance(net, BaselineNet):
        model = net.model
        blocks = getattr(model, "blocks", None)
        if getattr(model, "num_prefix_tokens", 0) and hasattr(blocks, "__getitem__"):
            last_block = cast(Sequence[nn.Module], blocks)[-1]
            if isinstance(getattr(last_block, "norm1", None), nn.Module):
                return {"combined": [cast(nn.Module, last_block.norm1)]}
        return {"combined": [model.get_submodule(model.feature_info[-1]["module"])]}
    raise TypeError(f"no Grad-CAM target layers known for {type(net).__name__}")


def gradcam_reshape(net: StagedNet) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The ``reshape_transform`` Grad-CAM needs for ``net``'s target layers: for a
    :class:`~fgssl.models.BaselineNet`, :func:`tokens_to_map` with its backbone's channels,
    prefix tokens and patch grid; None for an FGSSLNet (its blocks are convolutions)."""
    if not isinstance(net, BaselineNet):
        return None
    model = net.model
    channels = int(model.feature_info[-1]["num_chs"])
    prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    grid_size = (int(grid[0]), int(grid[1])) if grid is not None else None
    return lambda activation: tokens_to_map(
        activation, channels=channels, prefix_tokens=prefix, grid=grid_size
    )


def tokens_to_map(
    activation: torch.Tensor,
    *,
    channels: int,
    prefix_tokens: int = 0,
    grid: tuple[int, int] | None = None,
) -> torch.Tensor:
    """A layer's output as the (B, C, H, W) map Grad-CAM weighs, for ``channels`` = C.

    (B, C, H, W) is returned as it is; (B, H, W, C) (Swin's stages) is permuted; tokens
    (B, N, C) (ViT's blocks) lose their ``prefix_tokens`` (class, distillation, register
    tokens) and are laid out on ``grid`` (H, W) when it holds the N - prefix patch tokens,
    else on a square. Raises :class:`GradCAMUnavailable` for any other shape.
    """
    shape = tuple(activation.shape)
    if activation.ndim == 4 and shape[1] == channels:
        return activation
    if activation.ndim == 4 and shape[3] == channels:
        return activation.permute(0, 3, 1, 2)
    if activation.ndim == 3 and shape[2] == channels:
        patches = activation[:, prefix_tokens:]
        count = patches.shape[1]
        side = math.isqrt(count)
        height, width = grid if grid and grid[0] * grid[1] == count else (side, side)
        if height * width == count and count > 0:
            return patches.reshape(shape[0], height, width, channels).permute(0, 3, 1, 2)
    raise GradCAMUnavailable(
        f"a {shape} output ({channels} channels, {prefix_tokens} prefix tokens, patch grid "
        f"{grid}) cannot be laid out as (batch, channels, height, width)"
    )


def gradcam_maps(
    net: StagedNet, images: torch.Tensor, targets: Sequence[int]
) -> dict[str, np.ndarray]:
    """Grad-CAM maps (N, H, W) in [0, 1] of every head for class ``targets[i]`` of image i.

    The network runs in eval mode (its embedding heads use batch normalisation).
    """
    net.eval()
    device = next(net.parameters()).device
    images = images.to(device)
    maps = {}
    reshape = gradcam_reshape(net)
    for head, layers in gradcam_heads(net).items():
        with GradCAM(
            model=HeadLogits(net, head), target_layers=layers, reshape_transform=reshape
        ) as cam:
            maps[head] = cam(
                input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets]
            )
    return maps


def plot_gradcam(
    net: StagedNet,
    images: torch.Tensor,
    path: str | Path,
    *,
    labels: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Path:
    """Write :func:`gradcam_figure` to ``path`` (PNG)."""
    figure = gradcam_figure(net, images, labels=labels, class_names=class_names, mean=mean, std=std)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


def gradcam_figure(
    net: StagedNet,
    images: torch.Tensor,
    *,
    labels: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Figure:
    """One row per image of ``images`` (N, 3, H, W): the image, then the Grad-CAM heatmap of
    each head and of the combined prediction, all for the class the combined prediction
    chose. An all-zero map is drawn as the image alone, labelled :data:`NO_ACTIVATION`."""
    net.eval()
    with torch.no_grad():
        combined = net(images.to(next(net.parameters()).device)).combined
    predicted = combined.argmax(dim=1).tolist()
    maps = gradcam_maps(net, images, predicted)
    names = list(class_names or [str(c) for c in range(combined.shape[1])])
    columns = ["image", *maps]
    rows = images.shape[0]
    figure = Figure(figsize=(2.1 * len(columns), 2.3 * rows), layout="constrained")
    axes = figure.subplots(rows, len(columns), squeeze=False)
    for row in range(rows):
        rgb = to_display(images[row], mean, std).astype(np.float32)
        axes[row, 0].imshow(rgb)
        truth = f"true {names[labels[row]]}, " if labels is not None else ""
        axes[row, 0].set_title(f"{truth}pred {names[predicted[row]]}", fontsize=7)
        for col, head in enumerate(maps, start=1):
            _draw_map(axes[row, col], rgb, maps[head][row])
            if row == 0:
                axes[row, col].set_title(f"Grad-CAM: {head}", fontsize=8)
        for ax in axes[row]:
            ax.set_axis_off()
    return figure


def _draw_map(ax: Axes, rgb: np.ndarray, cam: np.ndarray) -> None:
    """The heatmap over the image, or the image alone and a label when ``cam`` (scaled to
    [0, 1]) is all zero."""
    if float(cam.max()) > 1e-6:
        ax.imshow(show_cam_on_image(rgb, cam, use_rgb=True))
        return
    ax.imshow(rgb)
    ax.text(
        0.5,
        0.5,
        NO_ACTIVATION,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=7,
        color="white",
        bbox={"facecolor": "black", "alpha": 0.6, "edgecolor": "none"},
    )
