"""fgssl-report: a Markdown and CSV table of a Hydra multirun (mean ± std over seeds)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from fgssl.cli.common import run_command
from fgssl.run.report import write_report

PROG = "fgssl-report"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Turn the directory of an `fgssl-train -m ...` sweep into a results table: one row "
            "per configuration (the job's overrides other than seed), each metric as mean ± "
            "sample standard deviation over seeds. Writes report.md, report.csv (means and "
            "standard deviations) and runs.csv (every job) and prints the Markdown table."
        ),
        epilog=(
            "examples:\n"
            "  fgssl-train -m +experiment=demo +method=baseline,pmg,fgssl seed=0,1,2\n"
            "  fgssl-report multirun/demo/2024-05-01_10-00-00\n"
            "  fgssl-report multirun/demo/2024-05-01_10-00-00 --metrics combined/kappa "
            "concat/kappa ssl_eval/knn/kappa"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("multirun_dir", help="the sweep's folder (multirun/<name>/<date_time>)")
    parser.add_argument(
        "--metrics",
        nargs="+",
        help="columns, as paths in results.json (combined/kappa = test/combined/kappa; "
        "default: the official metric of both heads, acc, balanced_acc, f1, auroc, the SSL "
        "protocols' official metric and the wall time)",
    )
    parser.add_argument("--output-dir", help="where to write (default: the multirun directory)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    return parser


def _report(args: argparse.Namespace) -> int:
    logging.getLogger("fgssl").setLevel(logging.INFO)
    paths = write_report(args.multirun_dir, metrics=args.metrics, output_dir=args.output_dir)
    print(paths["markdown"].read_text())
    print(f"written: {', '.join(str(p) for p in paths.values())}")
    return 0


main = run_command(PROG, build_parser(), _report)


def cli(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``fgssl-report``."""
    sys.exit(main(argv))


if __name__ == "__main__":
    cli()
