"""A Markdown table of finished runs: each run's test metrics with their 95 % bootstrap
intervals from its results.json, then the mean and sample standard deviation over the runs
of each group (runs whose names differ only in their ``_s<seed>`` suffix).

    python scripts/runs_table.py STUDY/runs/* --metrics combined/acc combined/auroc
    python scripts/runs_table.py STUDY/finetune/* --csv table.csv

fgssl-report does the same for a sweep directory (mean +- sd); this adds the per-run
intervals the studies' pages show, for runs made one by one (scripts/study_jobs.sh).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

SEED = re.compile(r"_s(\d+)$")


def value(results: dict[str, Any], metric: str) -> tuple[float | None, float | None, float | None]:
    """(estimate, low, high) of ``metric`` (``<head>/<name>`` of the test split, or a path
    such as ``ssl_eval/knn/balanced_acc``); None where absent or undefined."""
    parts = metric.split("/")
    if parts[0] in ("combined", "concat"):
        estimate = results.get("test", {}).get(parts[0], {}).get(parts[1])
        interval = results.get("intervals", {}).get("test", {}).get(parts[0], {}).get(parts[1])
        low, high = (interval or {}).get("low"), (interval or {}).get("high")
        return estimate, low, high
    node: Any = results
    for part in parts:
        node = node.get(part) if isinstance(node, dict) else None
    return (node if isinstance(node, int | float) else None), None, None


def _seed(run: Path) -> int | None:
    """The run's seed: its name's ``_s<seed>`` suffix, else its config.yaml's ``seed``."""
    match = SEED.search(run.name)
    if match:
        return int(match.group(1))
    config = run / "config.yaml"
    seed = yaml.safe_load(config.read_text()).get("seed") if config.is_file() else None
    return seed if isinstance(seed, int) else None


def _cell(row: dict[str, Any], metric: str) -> str:
    """``value [low, high]``, or the value alone without an interval, or a dash."""
    if row[metric] is None:
        return "—"
    low, high = row[f"{metric} low"], row[f"{metric} high"]
    interval = "" if low is None or high is None else f" [{low:.3f}, {high:.3f}]"
    return f"{row[metric]:.3f}{interval}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--metrics", nargs="+", default=["combined/balanced_acc", "combined/auroc"])
    parser.add_argument("--csv", type=Path, help="also write every run's values here")
    args = parser.parse_args(argv)
    rows = []
    for run in sorted(args.runs):
        path = run / "results.json"
        if not path.is_file():
            continue
        results = json.loads(path.read_text())
        row: dict[str, Any] = {"group": SEED.sub("", run.name), "seed": _seed(run)}
        for metric in args.metrics:
            row[metric], row[f"{metric} low"], row[f"{metric} high"] = value(results, metric)
        rows.append(row)
    if not rows:
        print("no finished runs (results.json) among the folders given", file=sys.stderr)
        return 1
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    print("| run | seed | " + " | ".join(args.metrics) + " |")
    print("|---|---|" + "---|" * len(args.metrics))
    for row in rows:
        cells = [_cell(row, m) for m in args.metrics]
        print(f"| {row['group']} | {row['seed']} | " + " | ".join(cells) + " |")
    print()
    print("| group | runs | " + " | ".join(f"{m} (mean ± sd)" for m in args.metrics) + " |")
    print("|---|---|" + "---|" * len(args.metrics))
    for group, members in table.groupby("group", sort=False):
        cells = []
        for m in args.metrics:
            values = [v for v in members[m] if v is not None and v == v]
            if not values:
                cells.append("—")
            elif len(values) == 1:
                cells.append(f"{values[0]:.3f}")
            else:
                cells.append(f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}")
        print(f"| {group} | {len(members)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
