"""What the first process writes after a run's test: ``results.json``, the figures, and the
SSL evaluation of the pretrained weights. Training is over, so a failure after results.json
is written is logged, not raised; nothing here is a collective."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from fgssl.atomic import write_text_atomically
from fgssl.data.base import ImageClassificationDataModule
from fgssl.evaluation.checkpoints import load_checkpoint
from fgssl.evaluation.inference import run_precision
from fgssl.evaluation.ssl import evaluate_frozen
from fgssl.module import FGSSLModule
from fgssl.plots.run import write_run_figures
from fgssl.run.predictions import write_run_predictions
from fgssl.run.pretrained_run import pretrained_checkpoint
from fgssl.run.run_report import add_paper_report, publish_run, write_reliability_diagram
from fgssl.rundir import RunDir
from fgssl.undefined import undefined_to_null

__all__ = ["write_outputs"]

log = logging.getLogger(__name__)


def write_outputs(
    cfg: DictConfig,
    run: RunDir,
    results: dict[str, Any],
    module: FGSSLModule,
    datamodule: ImageClassificationDataModule,
    device: torch.device,
) -> None:
    """``results.json`` (with the test metrics' intervals, calibration and referable-DR
    view), the per-image predictions of the test and validation splits
    (:mod:`fgssl.run.predictions`), the figures, the SSL evaluation of the pretrained
    network (added to ``results`` and results.json rewritten), then report.html and the
    MLflow attachments."""
    results["tta"] = list(module.test_views) or None  # the test's views (fgssl.ops.tta)
    results["ordinal"] = bool(datamodule.ordinal)  # which metrics the task has
    add_paper_report(
        cfg,
        results,
        module.test_predictions,
        ordinal=bool(datamodule.ordinal),
        class_names=list(datamodule.class_names),
        thresholds=module.ordinal_thresholds,
    )
    write_text_atomically(run.results, json.dumps(results, indent=2, allow_nan=False) + "\n")
    write_run_predictions(
        run,
        module,
        datamodule,
        device=device,
        precision=run_precision(results["precision"]),
        views=results.get("tta") or (),
    )
    if cfg.figures.enabled:
        _write_figures(cfg, run, module, datamodule, results["monitor"], device)
        write_reliability_diagram(run, module.test_predictions)
    # The pretrain phase's last checkpoint holds its final weights, in a resumed run too.
    pretrained = pretrained_checkpoint(cfg, run)
    if cfg.ssl_eval.enabled and pretrained is not None:
        ssl_results = _evaluate_pretrained(cfg, pretrained, datamodule, device)
        if ssl_results is not None:
            results["ssl_eval"] = undefined_to_null(ssl_results)
            text = json.dumps(results, indent=2, allow_nan=False) + "\n"
            write_text_atomically(run.results, text)
    publish_run(cfg, run)


def _evaluate_pretrained(
    cfg: DictConfig,
    checkpoint: Path,
    datamodule: ImageClassificationDataModule,
    device: torch.device,
) -> dict[str, Any] | None:
    """Linear probe and k-NN on the frozen features of the network of ``checkpoint`` (the
    pretrain phase's last), fitted on the finetune phase's (labelled) training images; None
    if it fails."""
    datamodule.enter_phase("finetune")
    try:
        results = evaluate_frozen(
            load_checkpoint(checkpoint).net,
            datamodule,
            split=cfg.ssl_eval.split,
            device=device,
            knn_k=cfg.ssl_eval.knn_k,
            knn_temperature=cfg.ssl_eval.knn_temperature,
            probe_c=cfg.ssl_eval.probe_c,
            features=cfg.ssl_eval.features,
        )
    except Exception:
        log.exception("the SSL evaluation of the pretrained network failed (results are saved)")
        return None
    metric = datamodule.official_metric
    log.info(
        "frozen pretrained features on the %s split: linear probe %s %.4f, k-NN %s %.4f",
        results["split"],
        metric,
        results["linear_probe"].get(metric, float("nan")),
        metric,
        results["knn"].get(metric, float("nan")),
    )
    return results


def _write_figures(
    cfg: DictConfig,
    run: RunDir,
    module: FGSSLModule,
    datamodule: ImageClassificationDataModule,
    monitor: str,
    device: torch.device,
) -> None:
    """The run's PNGs; a failure is logged (the results are saved already)."""
    try:
        written = write_run_figures(
            run.root,
            net=module.net.to(device),
            datamodule=datamodule,
            schedule=list(cfg.schedule.grids),
            monitor=monitor,
            confusion=module.test_confusion_matrices,
            num_images=cfg.figures.num_images,
            permutation=cfg.schedule.get("permutation", "derangement"),
        )
    except Exception:
        log.exception("could not write the figures of %s (the results are saved)", run.root)
        return
    log.info("figures: %s", ", ".join(path.name for path in written))
