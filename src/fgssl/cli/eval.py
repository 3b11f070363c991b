"""fgssl-eval: score a trained checkpoint on a labelled split of its dataset."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fgssl.cli.common import (
    MODELS_HELP,
    add_common_options,
    add_precision_option,
    add_tta_option,
    resolve_device,
    resolve_precision,
    run_command,
)
from fgssl.cli.members import load_members
from fgssl.errors import ConfigError
from fgssl.evaluation.bootstrap import BootstrapSettings
from fgssl.evaluation.evaluate import Evaluation, evaluate_split, write_evaluation
from fgssl.metrics import METRIC_DESCRIPTIONS
from fgssl.run.factory import bootstrap_settings
from fgssl.run.loading import build_eval_datamodule, check_split_matches
from fgssl.rundir import EVAL_DIR, RunDir
from fgssl.undefined import format_metric

PROG = "fgssl-eval"


DESCRIPTION = (
    "Evaluate a trained fgssl checkpoint on a labelled split of its dataset: writes "
    "results.json (every metric of the combined prediction and of the concat head "
    "with its bootstrap interval, the calibration, the referable-DR view of graded "
    "DR data, and the confusion matrices), per_class.csv, predictions.csv, "
    "confusion_matrix.png and reliability_diagram.png. The checkpoint's classes are "
    "matched to the data's by name: reordered when the data lists them in another "
    "order, refused when the names differ. A pretrain-phase checkpoint is refused. "
    "Several run directories or checkpoints are an ensemble: their class "
    "probabilities are averaged image by image (refused when their classes or "
    "preprocessing differ) and results.json names the members."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=(
            "examples:\n"
            "  fgssl-eval outputs/aptos/2024-05-01_10-00-00\n"
            "  fgssl-eval outputs/aptos/2024-05-01_10-00-00 --split val --tta\n"
            "  fgssl-eval run/finetune/checkpoints/last.ckpt data.root=/mnt/aptos2019\n"
            "  fgssl-eval model.ckpt --config run/config.yaml --output eval-test\n"
            "  fgssl-eval multirun/aptos/2024-05-01_10-00-00 --tta-views d4   # fold ensemble"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "models",
        nargs="+",
        metavar="MODEL|KEY=VALUE",
        help=f"{MODELS_HELP}; KEY=VALUE: changes to the (first) run's config, e.g. "
        "data.root=/data/aptos data.num_workers=0",
    )
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument(
        "--config",
        help="the run's config.yaml (default: the one in the checkpoint's run directory)",
    )
    parser.add_argument(
        "--output",
        help="folder for the outputs (default: <run dir>/eval/<split>; an ensemble: "
        "./eval-ensemble/<split>)",
    )
    add_tta_option(parser)
    add_precision_option(parser)
    parser.add_argument(
        "--resamples",
        type=int,
        help="bootstrap resamples of the intervals (default: the run's intervals.resamples, "
        "else 1000)",
    )
    parser.add_argument(
        "--confidence",
        type=float,
        help="level of the intervals (default: the run's intervals.confidence, else 0.95)",
    )
    parser.add_argument(
        "--ignore-split-file",
        action="store_true",
        help="evaluate even if the rebuilt split differs from the run's split.csv",
    )
    add_common_options(parser)
    return parser


def _interval_settings(args: argparse.Namespace, config: Any) -> BootstrapSettings:
    """The run's ``intervals.*`` with --resamples/--confidence in their place; ConfigError
    naming the option."""
    run = bootstrap_settings(config) if config is not None else BootstrapSettings()
    try:
        return BootstrapSettings(
            resamples=run.resamples if args.resamples is None else args.resamples,
            confidence=run.confidence if args.confidence is None else args.confidence,
            seed=run.seed,
        )
    except ConfigError as error:
        raise ConfigError(f"--{error}") from None


def split_models(items: list[str]) -> tuple[list[str], list[str]]:
    """(models, overrides) of the positional arguments: KEY=VALUE items that are no
    existing path are overrides."""
    overrides = [i for i in items if "=" in i and not Path(i).expanduser().exists()]
    models = [i for i in items if i not in overrides]
    if not models:
        raise ConfigError("no run directory or checkpoint to evaluate (only KEY=VALUE given)")
    return models, overrides


def _evaluate(args: argparse.Namespace) -> int:
    _interval_settings(args, None)  # bad options are refused before anything is loaded
    resolve_precision(args.precision, None, PROG)
    paths, overrides = split_models(args.models)
    members = load_members(paths, args, PROG)
    first = members.first
    datamodule = build_eval_datamodule(first.require_config(), overrides)
    datamodule.setup()
    assert datamodule.splits is not None
    for member in members.loaded:  # every member must have recorded this very split
        split_csv = RunDir(member.run_dir).split if member.run_dir else None
        checked = not args.ignore_split_file and args.split in datamodule.splits
        if checked and split_csv is not None and split_csv.is_file():
            check_split_matches(datamodule, args.split, split_csv)
    evaluation = evaluate_split(
        members.loaded,
        datamodule,
        args.split,
        device=resolve_device(args.device),
        tta=list(members.views),
        intervals=_interval_settings(args, first.config),
        precision=members.precision,
    )
    if members.is_ensemble:
        base = Path("eval-ensemble")
        print(members.describe())
    elif first.run_dir:
        base = RunDir(first.run_dir).eval_dir
    else:
        base = first.checkpoint.parent / EVAL_DIR
    out_dir = Path(args.output) if args.output else base / args.split
    paths_written = write_evaluation(evaluation, out_dir)
    print(summary(evaluation))
    print(f"\nwritten: {', '.join(str(p) for p in paths_written.values())}")
    return 0


def summary(evaluation: Evaluation) -> str:
    """The metrics of both heads, with the combined prediction's interval, as a plain-text
    table."""
    intervals = evaluation.report.get("intervals", {})
    settings = intervals.get("settings", {})
    combined = intervals.get(evaluation.split, {}).get("combined", {})
    level = f"{settings.get('confidence', 0.95):.0%}"
    lines = [
        f"{evaluation.split} split, {len(evaluation.predictions)} images "
        f"(official metric: {evaluation.official_metric})",
        f"{'metric':<28}{'combined':>10}{'concat':>10}   combined {level} interval",
    ]
    for name in evaluation.metrics["combined"]:
        label = f"{name}{' *' if name == evaluation.official_metric else ''}"
        values = [evaluation.metrics[head][name] for head in ("combined", "concat")]
        lines.append(
            f"{label:<28}{format_metric(values[0], 10)}{format_metric(values[1], 10)}   "
            + _interval(combined.get(name))
        )
    ece = evaluation.report.get("calibration", {}).get("heads", {}).get("combined", {})
    if ece:
        lines.append(
            f"{'ece (calibration)':<28}{format_metric(ece.get('ece'), 10)}{'':>10}   "
            + _interval(combined.get("ece"))
        )
    screening = evaluation.report.get("screening")
    if screening:
        lines.append("referable DR (grade >= 2), combined prediction:")
        for name, value in screening["metrics"].items():
            lines.append(
                f"  {name:<26}{format_metric(value, 10)}{'':>10}   "
                + _interval(screening["intervals"].get(name))
            )
    if settings:
        lines.append(
            f"intervals: {settings['method']}, {settings['resamples']} resamples, "
            f"seed {settings['seed']}"
        )
    names = list(evaluation.metrics["combined"])
    width = max(len(n) for n in names)
    legend = [f"  {n:<{width}}  {METRIC_DESCRIPTIONS.get(n, '')}" for n in names]
    return "\n".join([*lines, "", *legend])


def _interval(interval: dict[str, Any] | None) -> str:
    if not interval:
        return ""
    if interval.get("low") is None:
        return f"null ({interval.get('reason', 'undefined')})"
    return f"[{interval['low']:.4f}, {interval['high']:.4f}]"


main = run_command(PROG, build_parser(), _evaluate)


def cli(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``fgssl-eval``."""
    sys.exit(main(argv))


if __name__ == "__main__":
    cli()
