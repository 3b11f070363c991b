"""fgssl-report: a Markdown and CSV table of a Hydra multirun (mean ± std over seeds)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from fgssl.atomic import write_text_atomically
from fgssl.cli.common import run_command
from fgssl.errors import ConfigError
from fgssl.plots.sweep import X_SCALES, SweepPlot, swept_key, write_sweep_plots
from fgssl.run.report import collect_runs, default_metrics, resolve_metrics, write_report

PROG = "fgssl-report"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Turn the directory of an `fgssl-train -m ...` sweep into a results table: one row "
            "per configuration (the job's overrides other than seed), each metric as mean ± "
            "sample standard deviation over seeds. Writes report.md, report.csv (means and "
            "standard deviations) and runs.csv (every job) and prints the Markdown table. A "
            "sweep over data.fold adds its cross-validation: the out-of-fold scores and the "
            "fold ensemble on the shared test split, with intervals (cross_validation.json, "
            "oof_predictions.csv, fold_ensemble_test.csv and a section of report.md)."
        ),
        epilog=(
            "examples:\n"
            "  fgssl-train -m +experiment=demo +method=baseline,pmg,fgssl seed=0,1,2\n"
            "  fgssl-report multirun/demo/2024-05-01_10-00-00\n"
            "  fgssl-report multirun/demo/2024-05-01_10-00-00 --metrics combined/kappa "
            "concat/kappa ssl_eval/knn/kappa\n"
            "  fgssl-report multirun/demo/2024-05-01_10-00-00 --plot-against "
            "data.label_fraction --metrics combined/kappa"
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
    parser.add_argument(
        "--plot-against",
        metavar="KEY",
        help="also draw each metric against this swept override (e.g. data.label_fraction, "
        "method): mean over seeds ± sample standard deviation, one line per group of the "
        "other overrides; writes <metric>_vs_<KEY>.png and .csv (the plotted points)",
    )
    parser.add_argument(
        "--x-scale",
        choices=X_SCALES,
        help="the plot's x axis (with --plot-against; default auto: log when the values are "
        "numbers > 0 spanning a factor of 10 or more, else linear; non-numeric values are "
        "categories in sweep order)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    return parser


def _report(args: argparse.Namespace) -> int:
    logging.getLogger("fgssl").setLevel(logging.INFO)
    if args.x_scale and not args.plot_against:
        raise ConfigError("--x-scale applies to a plot: give --plot-against KEY with it")
    key = None
    if args.plot_against:  # every bad input is refused before a file is written
        runs = collect_runs(args.multirun_dir)
        columns = resolve_metrics(runs, args.metrics) if args.metrics else default_metrics(runs)
        key = swept_key(runs, args.plot_against, x_scale=args.x_scale or "auto")
    paths = write_report(args.multirun_dir, metrics=args.metrics, output_dir=args.output_dir)
    if key is not None:
        plots = write_sweep_plots(runs, key, columns, args.output_dir or args.multirun_dir)
        _link_plots(paths["markdown"], plots, key.name)
        for plot in plots:
            paths.update({f"{plot.metric} csv": plot.csv})
            paths.update({f"{plot.metric} png": plot.png} if plot.png else {})
    print(paths["markdown"].read_text())
    print(f"written: {', '.join(str(p) for p in paths.values())}")
    return 0


def _link_plots(markdown: Path, plots: list[SweepPlot], key: str) -> None:
    """Append the plots to report.md (images beside it, linked by file name)."""
    lines = ["", f"Plots against `{key}`:", ""]
    for plot in plots:
        label = plot.metric.removeprefix("test/")
        if plot.png:
            lines.append(f"![{label} against {key}]({plot.png.name})")
        else:
            lines.append(f"{label}: undefined in every run, not drawn ({plot.csv.name}).")
    lines += [
        "",
        "Each point: the mean over the seeds of the runs where the metric is defined (n in the "
        "figure); error bars: ± sample standard deviation (ddof=1), none where n = 1; a point "
        "where no run has a value is not drawn. Each figure's numbers are in the .csv file "
        "of the same name.",
        "",
    ]
    write_text_atomically(markdown, markdown.read_text().rstrip("\n") + "\n" + "\n".join(lines))


main = run_command(PROG, build_parser(), _report)


def cli(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``fgssl-report``."""
    sys.exit(main(argv))


if __name__ == "__main__":
    cli()
