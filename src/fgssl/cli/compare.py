"""fgssl-compare: two runs' predictions of the same labelled images, metric by metric, with
paired bootstrap intervals of the differences (:mod:`fgssl.evaluation.paired`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from fgssl.atomic import write_text_atomically
from fgssl.cli.common import run_command
from fgssl.errors import ConfigError, DataLayoutError
from fgssl.evaluation.bootstrap import BootstrapSettings
from fgssl.evaluation.paired import PairedDifference, paired_differences
from fgssl.evaluation.prediction_table import ScoredTable, read_prediction_table
from fgssl.rundir import RunDir

PROG = "fgssl-compare"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Compare two runs on the same labelled images: each metric of both and its "
            "difference (first minus second) with a paired bootstrap interval (both runs "
            "scored on the same resamples of the images, stratified by class), so what the "
            "interval shows is the test split's uncertainty about the difference. Images are "
            "matched by id and classes by name; predictions of other images or classes are "
            "refused. Seeds vary a run more than this interval shows: compare several."
        ),
        epilog=(
            "examples:\n"
            "  fgssl-compare outputs/fgssl/2024-05-01_10-00-00 outputs/pmg/2024-05-01_11-00-00\n"
            "  fgssl-compare runA runB --split val --metrics balanced_acc auroc\n"
            "  fgssl-compare a/predictions.csv b/predictions.csv --ordinal --output diff.json"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name in ("first", "second"):
        parser.add_argument(
            name,
            type=Path,
            help="a run directory of fgssl-train (its predictions/<split>.csv) or a "
            "prediction table (fgssl-eval's predictions.csv)",
        )
    parser.add_argument(
        "--split", choices=("test", "val"), default="test", help="a run directory's split"
    )
    parser.add_argument("--metrics", nargs="+", help="default: every metric both tables have")
    parser.add_argument(
        "--ordinal",
        action="store_true",
        help="graded classes (adds the kappa); a run directory says so itself",
    )
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0, help="the resamples' seed")
    parser.add_argument("--output", type=Path, help="also write the comparison as JSON here")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def _table(path: Path, split: str) -> tuple[ScoredTable, bool]:
    """The prediction table behind ``path`` and whether its run says its task is graded."""
    if path.is_dir():
        run = RunDir(path)
        table = run.predictions(split)
        if not table.is_file():
            raise DataLayoutError(
                f"{str(path)!r} holds no {split} predictions ({table.relative_to(path)}): "
                "expected a finished fgssl-train run directory or a prediction CSV"
            )
        return read_prediction_table(table), _graded(run.results)
    if not path.is_file():
        raise DataLayoutError(f"{str(path)!r} does not exist")
    return read_prediction_table(path), False


def _graded(results: Path) -> bool:
    """Whether a run's ``results.json`` says its classes are grades (False without one)."""
    if not results.is_file():
        return False
    try:
        return bool(json.loads(results.read_text()).get("ordinal"))
    except (ValueError, AttributeError) as error:
        message = f"cannot read {str(results)!r} as a run's results: {error}"
        raise DataLayoutError(message) from error


def _number(value: float | None, sign: str = "") -> str:
    return "null" if value is None else f"{value:{sign}.4f}"


def _row(metric: str, value: PairedDifference) -> str:
    low, high = value.interval.low, value.interval.high
    interval = "null" if low is None or high is None else f"[{low:+.4f}, {high:+.4f}]"
    return (
        f"| {metric} | {_number(value.first)} | {_number(value.second)} | "
        f"{_number(value.difference, '+')} | {interval} |"
    )


def main_body(args: argparse.Namespace) -> int:
    try:
        settings = BootstrapSettings(args.resamples, args.confidence, args.seed)
    except ConfigError as error:
        raise ConfigError(f"--{error}") from error
    (first, first_ordinal), (second, second_ordinal) = (
        _table(args.first, args.split),
        _table(args.second, args.split),
    )
    ordinal = args.ordinal or first_ordinal or second_ordinal
    try:
        result = paired_differences(
            first, second, ordinal=ordinal, metrics=args.metrics, settings=settings
        )
    except ValueError as error:
        raise ConfigError(f"--metrics: {error}") from error
    level = f"{settings.confidence:.0%}"
    print(f"first: {first.path}\nsecond: {second.path}\n{len(first.ids)} images, paired")
    print(f"\n| metric | first | second | first − second | {level} paired interval |")
    print("|---|---|---|---|---|")
    for metric, value in result.items():
        print(_row(metric, value))
    for metric, value in result.items():
        reason = value.interval.reason or value.interval.warning
        if reason:
            print(f"{metric}: {reason}", file=sys.stderr)
    if args.output:
        payload = {
            "first": str(first.path),
            "second": str(second.path),
            "images": len(first.ids),
            "ordinal": ordinal,
            "bootstrap": settings.to_json() | {"paired": True},
            "metrics": {metric: value.to_json() for metric, value in result.items()},
        }
        write_text_atomically(args.output, json.dumps(payload, indent=2) + "\n")
    return 0


main = run_command(PROG, build_parser(), main_body)


def cli(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``fgssl-compare``."""
    sys.exit(main(argv))


if __name__ == "__main__":
    cli()
