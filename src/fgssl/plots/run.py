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
from fgssl.plots.gradcam import GradCAMUnavailable, plot_gradcam
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
    drawing = _Drawing(run_dir)
    drawing.draw(
        "the training curves",
        lambda: plot_training_curves(run_dir, run_dir / "training_curves.png", monitor=monitor),
    )
    images, labels = _example_images(datamodule, split, num_images)
    if len(net.stage_names) > 1:
        drawing.draw(
            "the jigsaw schedule",
            lambda: plot_jigsaw_schedule(
                images[:2],
                schedule,
                run_dir / "jigsaw_schedule.png",
                stage_names=list(net.stage_names)[:-1],
                permutation=permutation,
                mean=datamodule.mean,
                std=datamodule.std,
            ),
        )
    class_names = list(datamodule.class_names)
    drawing.draw(
        "the Grad-CAM maps",
        lambda: plot_gradcam(
            net,
            images,
            run_dir / "gradcam.png",
            labels=labels if min(labels) >= 0 else None,
            class_names=class_names,
            mean=datamodule.mean,
            std=datamodule.std,
        ),
    )
    if confusion:
        drawing.draw(
            "the confusion matrices",
            lambda: plot_confusion_matrices(
                confusion, class_names, run_dir / "confusion_matrix.png", title=f"{split} split"
            ),
        )
    return drawing.written


class _Drawing:
    """The figures of a run written so far; one that cannot be drawn is logged and skipped."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.written: list[Path] = []

    def draw(self, name: str, plot: Callable[[], Path]) -> None:
        try:
            self.written.append(plot())
        except GradCAMUnavailable as error:  # a known limit of the network: one line
            log.warning("%s of %s skipped: %s", name, self.run_dir, error)
        except Exception:
            log.exception("could not draw %s of %s", name, self.run_dir)


def _example_images(
    datamodule: ImageClassificationDataModule, split: str, count: int
) -> tuple[torch.Tensor, list[int]]:
    """(count x 3 x S x S images, their labels) of ``split`` with the evaluation transforms,
    one of each class first (:func:`pick_images`)."""
    dataset = datamodule.dataset(split, pipeline="eval")
    items = [dataset[i] for i in pick_images(dataset.labels.tolist(), count)]
    return torch.stack([item["image"] for item in items]), [int(item["label"]) for item in items]
