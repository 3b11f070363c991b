"""All the figures of a finished run, written into its run directory."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from fgssl.data.base import ImageClassificationDataModule
from fgssl.models.base import StagedNet
from fgssl.ops.jigsaw import Permutation
from fgssl.plots.confusion import plot_confusion_matrices
from fgssl.plots.curves import plot_training_curves
from fgssl.plots.gradcam import plot_gradcam
from fgssl.plots.jigsaw import plot_jigsaw_schedule

__all__ = ["pick_images", "write_run_figures"]

log = logging.getLogger(__name__)


def pick_images(labels: Sequence[int], count: int) -> list[int]:
    """Indices of ``count`` images, one of each class first (in class order), then the rest."""
    first_of_class: dict[int, int] = {}
    for index, label in enumerate(labels):
        first_of_class.setdefault(int(label), index)
    chosen = [first_of_class[c] for c in sorted(first_of_class)][:count]
    chosen += [i for i in range(len(labels)) if i not in chosen][: count - len(chosen)]
    return chosen


def write_run_figures(
    run_dir: str | Path,
    *,
    net: StagedNet,
    datamodule: ImageClassificationDataModule,
    schedule: Sequence[int],
    monitor: str,
    confusion: Mapping[str, Sequence[Sequence[int]]] | None = None,
    split: str = "test",
    num_images: int = 4,
    permutation: Permutation = "derangement",
) -> list[Path]:
    """Write ``training_curves.png``, ``jigsaw_schedule.png`` (networks with puzzle stages),
    ``gradcam.png`` (``num_images`` images of ``split``, one per class first) and
    ``confusion_matrix.png`` (when ``confusion`` is given) into ``run_dir``.

    A figure that cannot be drawn (e.g. no CSV log for the curves) is logged and skipped;
    the others are still written. Returns the paths written.
    """
    run_dir = Path(run_dir)
    mean, std = datamodule.mean, datamodule.std
    written: list[Path] = []

    def draw(name: str, plot: Callable[[], Path]) -> None:
        try:
            written.append(plot())
        except Exception:
            log.exception("could not draw %s of %s", name, run_dir)

    draw(
        "the training curves",
        lambda: plot_training_curves(run_dir, run_dir / "training_curves.png", monitor=monitor),
    )
    dataset = datamodule.dataset(split, pipeline="eval")
    chosen = pick_images(dataset.labels.tolist(), num_images)
    items = [dataset[i] for i in chosen]
    images = torch.stack([item["image"] for item in items])
    labels = [int(item["label"]) for item in items]
    stage_names = list(net.stage_names)
    if len(stage_names) > 1:
        draw(
            "the jigsaw schedule",
            lambda: plot_jigsaw_schedule(
                images[:2],
                schedule,
                run_dir / "jigsaw_schedule.png",
                stage_names=stage_names[:-1],
                permutation=permutation,
                mean=mean,
                std=std,
            ),
        )
    class_names = list(datamodule.class_names)
    draw(
        "the Grad-CAM maps",
        lambda: plot_gradcam(
            net,
            images,
            run_dir / "gradcam.png",
            labels=labels if min(labels) >= 0 else None,
            class_names=class_names,
            mean=mean,
            std=std,
        ),
    )
    if confusion:
        draw(
            "the confusion matrices",
            lambda: plot_confusion_matrices(
                confusion, class_names, run_dir / "confusion_matrix.png", title=f"{split} split"
            ),
        )
    return written
