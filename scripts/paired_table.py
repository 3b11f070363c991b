"""A Markdown table of paired comparisons between the methods of a study: for each finished
run ``<method>_<rest>`` of METHOD in the folder and each run ``<other>_<rest>`` of the same
``<rest>`` (fraction, seed) for the methods AGAINST, the metrics' differences with their
paired bootstrap intervals (fgssl.evaluation.paired, as ``fgssl-compare``), then per
comparison and ``<rest>`` without its seed, the mean difference over seeds and how many seeds
the interval put above 0, overlapping 0 and below 0.

    python scripts/paired_table.py STUDY/finetune --method fgssl --against baseline pmg
    python scripts/paired_table.py STUDY/finetune --metrics balanced_acc --csv paired.csv
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import pandas as pd

from fgssl.evaluation.bootstrap import BootstrapSettings
from fgssl.evaluation.paired import paired_differences
from fgssl.evaluation.prediction_table import read_prediction_table
from fgssl.rundir import RunDir

SEED = re.compile(r"(?:^|_)s(\d+)$")  # f0.1_s2, or s2 alone


def _verdict(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "undefined"
    return "above 0" if low > 0 else "below 0" if high < 0 else "overlaps 0"


def compare(folder: Path, method: str, against: list[str], metrics: list[str]) -> pd.DataFrame:
    """One row per (run of ``method``, other method, metric) whose runs both finished."""
    rows = []
    for run in sorted(folder.glob(f"{method}_*")):
        rest = run.name[len(method) + 1 :]
        for other in against:
            pair = [RunDir(run), RunDir(folder / f"{other}_{rest}")]
            if not all(p.results.is_file() for p in pair):
                continue
            tables = [read_prediction_table(p.predictions("test")) for p in pair]
            ordinal = bool(json.loads(pair[0].results.read_text()).get("ordinal"))
            result = paired_differences(
                *tables, ordinal=ordinal, metrics=metrics, settings=BootstrapSettings()
            )
            seed = SEED.search(rest)
            for metric, value in result.items():
                rows.append(
                    {
                        "setting": SEED.sub("", rest) or "-",
                        "seed": int(seed.group(1)) if seed else None,
                        "comparison": f"{method} - {other}",
                        "metric": metric,
                        "first": value.first,
                        "second": value.second,
                        "difference": value.difference,
                        "low": value.interval.low,
                        "high": value.interval.high,
                        "verdict": _verdict(value.interval.low, value.interval.high),
                    }
                )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the study's runs, named <method>_<rest>")
    parser.add_argument("--method", default="fgssl")
    parser.add_argument("--against", nargs="+", default=["baseline", "pmg"])
    parser.add_argument("--metrics", nargs="+", default=["balanced_acc", "auroc"])
    parser.add_argument("--csv", type=Path, help="also write every comparison here")
    args = parser.parse_args(argv)
    table = compare(args.folder, args.method, args.against, args.metrics)
    if table.empty:
        print("no pair of finished runs among the folder's runs", file=sys.stderr)
        return 1
    if args.csv:
        table.to_csv(args.csv, index=False)
    print("| setting | seed | comparison | metric | difference [95 % paired interval] |")
    print("|---|---|---|---|---|")
    for row in table.itertuples():
        low, high = row.low, row.high
        interval = "" if pd.isna(low) or pd.isna(high) else f" [{low:+.3f}, {high:+.3f}]"
        difference = "null" if pd.isna(row.difference) else f"{row.difference:+.3f}"
        print(
            f"| {row.setting} | {row.seed} | {row.comparison} | {row.metric} | "
            f"{difference}{interval} |"
        )
    print()
    print(
        "| setting | comparison | metric | seeds | mean difference | above 0 / overlaps / below |"
    )
    print("|---|---|---|---|---|---|")
    for (setting, comparison, metric), group in table.groupby(
        ["setting", "comparison", "metric"], sort=False
    ):
        values = [v for v in group["difference"] if not pd.isna(v)]
        mean = f"{statistics.mean(values):+.3f}" if values else "null"
        counts = group["verdict"].value_counts()
        tally = " / ".join(str(counts.get(v, 0)) for v in ("above 0", "overlaps 0", "below 0"))
        print(f"| {setting} | {comparison} | {metric} | {len(group)} | {mean} | {tally} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
