"""The pretrain monitor of several runs in one figure (docs/studies/ssl.md, "Does the
pretrain phase learn here?"): k-NN of the validation images on the backbone's features, the
concat head's
effective rank and the pretraining loss against optimizer steps (0: random weights; one
marker per epoch, so runs with epochs of different lengths compare), one line per run, one
colour per group of runs.

    python scripts/plot_pretrain_curves.py OUT.png GROUP=RUN_DIR [GROUP=RUN_DIR ...]

e.g. ``labelled=multirun/label-study/p/labelled_s0``. Also writes OUT.csv: the plotted
numbers, one row per run and epoch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from fgssl.plots.monitor import read_monitor_series
from fgssl.rundir import RunDir

PANELS = {
    "monitor/knn/kappa": "k-NN QWK of the validation images",
    "monitor/concat/rankme": "effective rank of the concat embedding",
    "pretrain/loss_epoch": "pretraining loss (epoch mean)",
}


def run_series(run_dir: Path) -> pd.DataFrame:
    """One row per epoch trained: the monitor's numbers and that epoch's mean loss."""
    metrics = RunDir(run_dir).metrics("pretrain")
    series = read_monitor_series(metrics)
    if series.empty:
        raise SystemExit(f"{metrics}: no pretrain monitor rows (ssl_monitor.every_n_epochs=0?)")
    table = pd.read_csv(metrics)
    losses = table.dropna(subset=["pretrain/loss_epoch"]).groupby("epoch")["pretrain/loss_epoch"]
    loss = losses.last()
    loss.index = loss.index + 1  # the loss of epoch e (0-based) ends with e + 1 epochs trained
    steps = table.dropna(subset=["pretrain/loss_epoch"]).groupby("epoch")["step"].max() + 1
    steps.index = steps.index + 1
    joined = series.join(loss, how="outer").join(steps.rename("steps"), how="outer")
    joined.loc[0, "steps"] = 0
    return joined


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not all("=" in a for a in argv[1:]):
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    rows = []
    for item in argv[1:]:
        group, run = item.split("=", 1)
        series = run_series(Path(run))
        rows.append(series.reset_index(names="epochs_trained").assign(group=group, run=run))
    table = pd.concat(rows, ignore_index=True)
    figure, axes = plt.subplots(1, len(PANELS), figsize=(5 * len(PANELS), 3.6))
    colours = {g: f"C{i}" for i, g in enumerate(dict.fromkeys(table["group"]))}
    for ax, (column, title) in zip(axes, PANELS.items(), strict=True):
        for _, lines in table.groupby(["group", "run"], sort=False):
            points = lines.dropna(subset=[column])
            group = str(points["group"].iloc[0]) if len(points) else ""
            ax.plot(points["steps"], points[column], marker=".", color=colours.get(group),
                    label=group, alpha=0.8)  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("optimizer steps (0: random weights; a marker per epoch)")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    table.to_csv(out.with_suffix(".csv"), index=False)
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
