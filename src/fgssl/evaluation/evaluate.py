"""Evaluating a trained checkpoint on a labelled split: metrics, per-class report, figures."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from fgssl.atomic import write_csv_atomically, write_text_atomically
from fgssl.data.base import ImageClassificationDataModule
from fgssl.errors import ConfigError
from fgssl.evaluation.bootstrap import BootstrapSettings
from fgssl.evaluation.calibration import reliability_bins
from fgssl.evaluation.checkpoints import LoadedRun
from fgssl.evaluation.classes import ClassMatch, match_classes
from fgssl.evaluation.ensemble import ensemble_facts, ensemble_thresholds
from fgssl.evaluation.inference import HEADS, predict_probabilities, run_precision
from fgssl.evaluation.prediction_table import prediction_table
from fgssl.evaluation.reporting import paper_report
from fgssl.evaluation.scoring import confusion_matrix, per_class_report, score_heads
from fgssl.evaluation.thresholds import thresholded_columns
from fgssl.ops.tta import tta_views
from fgssl.rundir import RELIABILITY_DIAGRAM, RESULTS
from fgssl.thresholds import FittedThresholds
from fgssl.undefined import undefined_to_null

__all__ = [
    "Evaluation",
    "evaluate_split",
    "write_evaluation",
]

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """What :func:`evaluate_split` measured on one split."""

    split: str
    class_names: list[str]
    official_metric: str
    metrics: dict[str, dict[str, float]]
    """By head (``combined``, ``concat``): metric name -> value (NaN where undefined)."""
    confusion: dict[str, list[list[int]]]
    """By head: counts, rows = true class, columns = predicted class."""
    per_class: pd.DataFrame
    """One row per head and class: precision, recall, F1, AUROC (NaN where undefined),
    support."""
    predictions: pd.DataFrame
    """One row per image: id, label, prediction, the combined probability of each class and,
    with the checkpoint's ordinal thresholds, the expected and thresholded grades."""
    facts: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    """:func:`fgssl.evaluation.reporting.paper_report`: ``intervals``, ``calibration`` and
    (ICDR grading) ``screening``."""

    def to_json(self) -> dict[str, Any]:
        """What ``results.json`` holds: metrics (None where undefined) and confusion matrices
        of each head, facts."""
        json_tree: dict[str, Any] = undefined_to_null(
            {
                "split": self.split,
                "num_images": len(self.predictions),
                "official_metric": self.official_metric,
                "class_names": self.class_names,
                "metrics": self.metrics,
                "confusion_matrix": self.confusion,
                **self.report,
                **self.facts,
            }
        )
        return json_tree


def evaluate_split(
    loaded: LoadedRun | Sequence[LoadedRun],
    datamodule: ImageClassificationDataModule,
    split: str = "test",
    *,
    device: torch.device | str = "cpu",
    tta: Any = None,
    intervals: BootstrapSettings | None = None,
    precision: str = "32-true",
) -> Evaluation:
    """Predict every image of ``split`` in ``precision`` (the run's own test ran in its
    ``trainer.precision``), averaged over the views of ``tta`` (a spec of
    :func:`fgssl.ops.tta.tta_views`; see :func:`~.inference.predict_probabilities`), and
    score the combined prediction and the concat head, the checkpoint's classes matched to
    the data's by name (:func:`match_classes`: reordered into the data's label order,
    refused when the names differ; a pretrain checkpoint is refused), with the bootstrap
    intervals (``intervals``), the calibration and, for ICDR grading, the referable-DR view
    of :func:`~.reporting.paper_report`; the facts record the precision and views. With the
    checkpoint's ordinal thresholds, the metrics add ``kappa_thresholded`` and the
    predictions the thresholded grade. Several checkpoints (``loaded`` a sequence) are an
    ensemble: their probabilities are averaged image by image (:mod:`~.ensemble`; the
    caller checks their preprocessing), and no member's thresholds cut them."""
    members = [loaded] if isinstance(loaded, LoadedRun) else list(loaded)
    table, matches = _scored_split(members, datamodule, split)
    class_names = matches[0].data_names
    outputs = _predict_members(
        members, matches, datamodule.eval_dataloader(split), device, tta, precision
    )
    labels = outputs["label"]
    ordinal = bool(datamodule.ordinal)
    heads = {head: outputs[head] for head in HEADS}
    cuts = ensemble_thresholds(members) if ordinal else None
    return Evaluation(
        split=split,
        class_names=class_names,
        official_metric=datamodule.official_metric,
        metrics=score_heads(
            heads, labels, split=split, ordinal=ordinal, class_names=class_names, thresholds=cuts
        ),
        confusion={head: confusion_matrix(outputs[head], labels) for head in HEADS},
        per_class=_per_class(heads, labels, class_names),
        predictions=_predictions(table, labels, outputs["combined"], class_names, cuts),
        report=paper_report(
            {head: probabilities.double().numpy() for head, probabilities in heads.items()},
            labels.numpy(),
            ordinal=ordinal,
            class_names=class_names,
            settings=intervals,
            split=split,
            thresholds=cuts,
        ),
        facts={
            **_member_facts(members, matches),
            **_settings_facts(tta, precision, len(table), len(datamodule.unreadable)),
            **({"ordinal_thresholds": cuts.to_json()} if cuts else {}),
        },
    )


def _predict_members(
    members: list[LoadedRun],
    matches: list[ClassMatch],
    batches: Iterable[Mapping[str, Any]],
    device: torch.device | str,
    tta: Any,
    precision: str,
) -> dict[str, torch.Tensor]:
    """:func:`predict_probabilities` of the members' networks on ``batches``, averaged over
    the views of ``tta`` and over the members, each member's columns in the data's class
    order (``matches``): (N, C) ``combined`` and ``concat``, (N,) ``label``."""
    return predict_probabilities(
        [member.module.net for member in members],
        batches,
        device=device,
        tta=tta,
        precision=precision,
        columns=[match.order for match in matches],
    )


def _per_class(
    heads: dict[str, torch.Tensor], labels: torch.Tensor, class_names: list[str]
) -> pd.DataFrame:
    """One row per head and class: :func:`per_class_report` of each head."""
    return pd.concat(
        [per_class_report(p, labels, class_names).assign(head=h) for h, p in heads.items()],
        ignore_index=True,
    )[["head", "class", "precision", "recall", "f1", "auroc", "support"]]


def _settings_facts(tta: Any, precision: str, images: int, unreadable: int) -> dict[str, Any]:
    """The views (:func:`tta_views`), the precision and the numbers of images scored and of
    unreadable ones left out."""
    return {
        "tta": list(tta_views(tta)) or None,
        "precision": run_precision(precision),
        "images": images,
        "unreadable_images_left_out": unreadable,
    }


def _member_facts(members: list[LoadedRun], matches: list[ClassMatch]) -> dict[str, Any]:
    """``checkpoint`` and ``checkpoint_class_names`` of one checkpoint; of an ensemble,
    ``ensemble`` (:func:`ensemble_facts`) with each member's class names."""
    if len(members) == 1:
        return {
            "checkpoint": str(members[0].checkpoint),
            "checkpoint_class_names": matches[0].checkpoint_names,
        }
    facts = ensemble_facts(members)
    facts["member_class_names"] = [match.checkpoint_names for match in matches]
    return {"ensemble": facts}


def _scored_split(
    members: list[LoadedRun], datamodule: ImageClassificationDataModule, split: str
) -> tuple[pd.DataFrame, list[ClassMatch]]:
    """The table of ``split`` and each checkpoint's classes matched to the data's by name,
    after refusing a pretrain checkpoint (:class:`CheckpointError`), a split the data does
    not have, one without labels, and classes that cannot be matched by name
    (:class:`ConfigError`); unreadable images left out are counted in a warning."""
    for member in members:
        member.require_classifier()
    datamodule.setup()
    assert datamodule.splits is not None
    if split not in datamodule.splits:
        raise ConfigError(
            f"{type(datamodule).__name__} has no {split!r} split: choose one of "
            f"{sorted(datamodule.splits)}"
        )
    table = datamodule.table(split)
    if datamodule.unreadable:
        log.warning(
            "%d unreadable image(s) are left out (data.missing_images=skip), e.g. %s",
            len(datamodule.unreadable),
            next(iter(datamodule.unreadable)),
        )
    if (table["label"] < 0).any():
        raise ConfigError(
            f"the {split!r} split has no labels to score against: use fgssl-predict for it"
        )
    matches = [
        match_classes(
            member.recorded_class_names,
            datamodule.class_names,
            checkpoint=str(member.checkpoint),
            data=f"{split!r} split of {type(datamodule).__name__}",
        )
        for member in members
    ]
    return table, matches


def write_evaluation(evaluation: Evaluation, out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.json``, ``per_class.csv``, ``predictions.csv``,
    ``confusion_matrix.png`` and ``reliability_diagram.png`` (the combined prediction) into
    ``out_dir``; returns their paths by name. Undefined values are ``null`` in the JSON and
    empty cells in the CSVs."""
    from fgssl.plots.calibration import plot_reliability_diagram
    from fgssl.plots.confusion import plot_confusion_matrices

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": out_dir / RESULTS,
        "per_class": out_dir / "per_class.csv",
        "predictions": out_dir / "predictions.csv",
        "confusion_matrix": out_dir / "confusion_matrix.png",
        "reliability_diagram": out_dir / RELIABILITY_DIAGRAM,
    }
    write_text_atomically(
        paths["results"], json.dumps(evaluation.to_json(), indent=2, allow_nan=False) + "\n"
    )
    write_csv_atomically(paths["per_class"], evaluation.per_class)
    write_csv_atomically(paths["predictions"], evaluation.predictions, exact=True)
    plot_confusion_matrices(
        evaluation.confusion,
        evaluation.class_names,
        paths["confusion_matrix"],
        title=f"{evaluation.split} split",
    )
    table = evaluation.predictions
    probabilities = table[[f"prob_{name}" for name in evaluation.class_names]].to_numpy()
    plot_reliability_diagram(
        reliability_bins(probabilities, table["label"].to_numpy()),
        paths["reliability_diagram"],
        title=f"combined, {evaluation.split} split",
    )
    return paths


def _predictions(
    table: pd.DataFrame,
    labels: torch.Tensor,
    combined: torch.Tensor,
    class_names: list[str],
    thresholds: FittedThresholds | None,
) -> pd.DataFrame:
    """:func:`prediction_table` of the (N, C) ``combined`` probabilities and, with ordinal
    ``thresholds``, the thresholded grade
    (:func:`~fgssl.evaluation.thresholds.thresholded_columns`)."""
    probabilities = combined.double().numpy()
    return prediction_table(
        table["id"].astype(str).tolist(), labels.numpy(), probabilities, class_names
    ).assign(**thresholded_columns(probabilities, thresholds, class_names))
