"""fgssl-report --plot-against: a metric against a swept key, mean ± sd over seeds per group."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.container import ErrorbarContainer
from matplotlib.image import imread

from fgssl.cli import report as report_cli
from fgssl.errors import ConfigError
from fgssl.overrides import following_keys, one_spelling
from fgssl.plots.sweep import (
    plot_file_stem,
    plot_metric_against,
    sweep_points,
    swept_key,
    write_sweep_plots,
)
from fgssl.run.report import collect_runs

FRACTIONS = ("0.1", "0.25", "1")
METHODS = ("pmg", "fgssl")  # sweep order; alphabetical order would put fgssl first
SEEDS = (0, 1, 2)


def kappa(method: str, fraction: str, seed: int) -> float:
    """A known value per run: grows with the fraction, fgssl 0.05 above pmg, seeds spread."""
    return round(0.5 + 0.3 * float(fraction) + (0.05 if method == "fgssl" else 0) + 0.02 * seed, 6)


def fake_sweep(root: Path, fractions=FRACTIONS, methods=METHODS) -> Path:
    """A multirun folder as `fgssl-train -m +experiment=demo +method=... data.label_fraction=...
    seed=...` leaves it: numbered jobs with .hydra/overrides.yaml and results.json."""
    job = 0
    for method in methods:
        for fraction in fractions:
            for seed in SEEDS:
                folder = root / str(job)
                (folder / ".hydra").mkdir(parents=True)
                overrides = [
                    "+experiment=demo",
                    f"+method={method}",
                    f"data.label_fraction={fraction}",
                    f"seed={seed}",
                ]
                (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
                results = {
                    "test": {"combined": {"kappa": kappa(method, fraction, seed), "acc": 0.5}},
                    "monitor": "val/combined/kappa",
                }
                (folder / "results.json").write_text(json.dumps(results))
                job += 1
    return root


def set_null(root: Path, method: str, fraction: str, seeds: tuple[int, ...]) -> None:
    """Make combined/kappa undefined (null) in the given runs."""
    for folder in root.iterdir():
        overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
        seed = int(overrides[3].split("=")[1])
        point = {f"+method={method}", f"data.label_fraction={fraction}"}
        if point <= set(overrides) and seed in seeds:
            path = folder / "results.json"
            results = json.loads(path.read_text())
            results["test"]["combined"]["kappa"] = None
            path.write_text(json.dumps(results))


def errorbars(figure) -> dict[str, ErrorbarContainer]:
    ax = figure.axes[0]
    return {c.get_label(): c for c in ax.containers if isinstance(c, ErrorbarContainer)}


def bar_spans(container: ErrorbarContainer) -> list[tuple[float, float]]:
    """(low, high) of each drawn error bar."""
    (bars,) = container.lines[2]
    return [(float(s[:, 1].min()), float(s[:, 1].max())) for s in bars.get_segments() if len(s)]


def test_points_are_means_and_sample_sd_over_seeds(tmp_path: Path) -> None:
    runs = collect_runs(fake_sweep(tmp_path / "sweep"))
    key = swept_key(runs, "data.label_fraction")
    assert key.values == FRACTIONS and key.numbers == (0.1, 0.25, 1.0)
    points = sweep_points(runs, key, "test/combined/kappa")
    assert points["group"].tolist() == ["+method=pmg"] * 3 + ["+method=fgssl"] * 3
    for row in points.itertuples():
        method = row.group.split("=")[1]
        by_hand = [kappa(method, row._2, s) for s in SEEDS]
        assert row.n == row.runs == 3
        assert row.mean == pytest.approx(sum(by_hand) / 3)
        # sample sd of x, x+0.02, x+0.04 is exactly 0.02
        assert row.std == pytest.approx(0.02)
        assert row.std == pytest.approx(np.std(by_hand, ddof=1))
        assert (row.min, row.max) == (min(by_hand), max(by_hand))

    figure = plot_metric_against(points, key, "test/combined/kappa", tmp_path / "k.png")
    lines = errorbars(figure)
    assert list(lines) == ["+method=pmg", "+method=fgssl"]
    for group, container in lines.items():
        mine = points[points["group"] == group]
        np.testing.assert_allclose(container.lines[0].get_ydata(), mine["mean"])
        spans = bar_spans(container)
        np.testing.assert_allclose([lo for lo, _ in spans], mine["mean"] - mine["std"])
        np.testing.assert_allclose([hi for _, hi in spans], mine["mean"] + mine["std"])
    ax = figure.axes[0]
    assert ax.get_xscale() == "log"  # 0.1 to 1 spans a factor of 10
    assert [t.get_text() for t in ax.get_xticklabels()] == list(FRACTIONS)
    # the two lines are shifted sideways symmetrically around each value (on the log axis)
    pmg_x = lines["+method=pmg"].lines[0].get_xdata()
    fgssl_x = lines["+method=fgssl"].lines[0].get_xdata()
    np.testing.assert_allclose(np.sqrt(pmg_x * fgssl_x), key.numbers)
    assert (pmg_x < key.numbers).all()
    assert "n = 3 runs per point" in ax.get_title() and not ax.texts
    (legend,) = figure.legends  # below the axes, the groups' labels wrapped
    assert "sample sd" in legend.get_title().get_text()
    assert [t.get_text() for t in legend.get_texts()] == ["+method=pmg", "+method=fgssl"]
    assert imread(tmp_path / "k.png").ndim == 3


def test_undefined_runs_are_left_out_of_their_point(tmp_path: Path, caplog) -> None:
    multirun = fake_sweep(tmp_path / "sweep")
    set_null(multirun, "fgssl", "0.25", (0,))  # that point: n = 2
    set_null(multirun, "pmg", "1", (0, 1))  # n = 1: no error bar
    set_null(multirun, "pmg", "0.1", SEEDS)  # n = 0: not drawn
    runs = collect_runs(multirun)
    key = swept_key(runs, "data.label_fraction")
    with caplog.at_level(logging.WARNING, logger="fgssl"):
        points = sweep_points(runs, key, "test/combined/kappa").set_index(["group", key.name])
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [
        "data.label_fraction=0.1, group +method=pmg: test/combined/kappa is undefined (null) "
        "in all 3 run(s); point not drawn"
    ]
    two = points.loc[("+method=fgssl", "0.25")]
    assert (two["n"], two["runs"]) == (2, 3)
    assert two["mean"] == pytest.approx(np.mean([kappa("fgssl", "0.25", s) for s in (1, 2)]))
    assert two["std"] == pytest.approx(np.std([kappa("fgssl", "0.25", s) for s in (1, 2)], ddof=1))
    one = points.loc[("+method=pmg", "1")]
    assert one["n"] == 1 and one["mean"] == pytest.approx(kappa("pmg", "1", 2))
    assert np.isnan(one["std"])
    none = points.loc[("+method=pmg", "0.1")]
    assert none["n"] == 0 and np.isnan(none["mean"])  # never 0

    figure = plot_metric_against(
        points.reset_index(), key, "test/combined/kappa", tmp_path / "k.png"
    )
    lines = errorbars(figure)
    pmg = lines["+method=pmg"]
    # the undrawn point is a gap (NaN) in the line, not a value
    pmg_means = [np.nan, kappa("pmg", "0.25", 1), one["mean"]]
    np.testing.assert_allclose(pmg.lines[0].get_ydata(), pmg_means)
    assert len(bar_spans(pmg)) == 1  # the n = 1 point has no bar
    assert len(lines["+method=fgssl"].lines[0].get_ydata()) == 3
    texts = sorted(t.get_text() for t in figure.axes[0].texts)
    assert texts == ["n=1", "n=2", "n=3", "n=3", "n=3"]  # n differs: written beside each point


def test_cli_writes_png_csv_and_links_them(tmp_path: Path, capsys) -> None:
    multirun = fake_sweep(tmp_path / "sweep")
    set_null(multirun, "pmg", "0.1", SEEDS)
    argv = [str(multirun), "--plot-against", "data.label_fraction"]
    assert report_cli.main([*argv, "--metrics", "combined/kappa", "combined/acc"]) == 0
    out = capsys.readouterr().out
    stem = "combined_kappa_vs_data.label_fraction"
    png, csv = multirun / f"{stem}.png", multirun / f"{stem}.csv"
    assert imread(png).ndim == 3
    assert str(png) in out.split("written: ")[1] and str(csv) in out
    assert (multirun / "combined_acc_vs_data.label_fraction.png").is_file()
    markdown = (multirun / "report.md").read_text()
    assert f"![combined/kappa against data.label_fraction]({stem}.png)" in markdown
    assert markdown.index("| configuration |") < markdown.index(f"({stem}.png)")
    table = pd.read_csv(csv, dtype={"data.label_fraction": str})
    row = table.set_index(["group", "data.label_fraction"]).loc[("+method=fgssl", "0.25")]
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(np.mean([kappa("fgssl", "0.25", s) for s in SEEDS]))
    undrawn = table.set_index(["group", "data.label_fraction"]).loc[("+method=pmg", "0.1")]
    assert undrawn["n"] == 0 and np.isnan(undrawn["mean"])

    # a categorical key: the methods in sweep order, one line per label fraction
    assert report_cli.main([str(multirun), "--plot-against", "+method", "--metrics",
                            "combined/kappa"]) == 0  # fmt: skip
    table = pd.read_csv(multirun / "combined_kappa_vs_method.csv", dtype=str)
    assert table["method"].tolist()[:2] == list(METHODS)
    assert list(dict.fromkeys(table["group"])) == [f"data.label_fraction={f}" for f in FRACTIONS]


def test_axis_scale(tmp_path: Path) -> None:
    runs = collect_runs(fake_sweep(tmp_path / "a", fractions=("0.25", "0.5", "1")))
    assert not swept_key(runs, "data.label_fraction").log_x  # spans only 4x
    assert swept_key(runs, "data.label_fraction", x_scale="log").log_x
    wide = collect_runs(fake_sweep(tmp_path / "b"))
    assert not swept_key(wide, "data.label_fraction", x_scale="linear").log_x
    method = swept_key(wide, "+method")
    assert method.name == "method" and not method.numeric and method.values == METHODS
    with pytest.raises(ConfigError, match=r"--x-scale log: method takes the values"):
        swept_key(wide, "method", x_scale="log")
    figure = plot_metric_against(
        sweep_points(runs, swept_key(runs, "data.label_fraction"), "test/combined/kappa"),
        swept_key(runs, "data.label_fraction"),
        "test/combined/kappa",
        tmp_path / "linear.png",
    )
    assert figure.axes[0].get_xscale() == "linear"
    np.testing.assert_allclose(figure.axes[0].get_xticks(), [0.25, 0.5, 1.0])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--plot-against", "data.batch_size"],
            "--plot-against data.batch_size: no job of the sweep sets 'data.batch_size'; "
            "the swept keys are ['data.label_fraction', 'method']",
        ),
        (
            ["--plot-against", "+experiment"],
            "--plot-against +experiment: every job sets experiment=demo, a single value; a "
            "plot needs at least two; the swept keys are ['data.label_fraction', 'method']",
        ),
        (["--plot-against", "seed"], "each point is a mean over seeds"),
        (
            ["--plot-against", "data.label_fraction", "--metrics", "combined/f2"],
            "no metric 'combined/f2' in the runs' results.json",
        ),
        (["--x-scale", "log"], "--x-scale applies to a plot: give --plot-against KEY with it"),
    ],
)
def test_errors_are_one_line_and_nothing_is_written(
    tmp_path: Path, capsys, argv: list[str], message: str
) -> None:
    multirun = fake_sweep(tmp_path / "sweep")
    before = sorted(p.name for p in multirun.iterdir())
    assert report_cli.main([str(multirun), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgssl-report: error: ") and message in err
    assert err.count("\n") == 1
    assert sorted(p.name for p in multirun.iterdir()) == before  # no report, no figure


def test_metric_undefined_everywhere_gets_no_png(tmp_path: Path, caplog) -> None:
    multirun = fake_sweep(tmp_path / "sweep")
    for fraction in FRACTIONS:
        for method in METHODS:
            set_null(multirun, method, fraction, SEEDS)
    runs = collect_runs(multirun)
    key = swept_key(runs, "data.label_fraction")
    with caplog.at_level(logging.WARNING, logger="fgssl"):
        (plot,) = write_sweep_plots(runs, key, ["test/combined/kappa"], tmp_path / "out")
    assert plot.png is None and plot.csv.is_file()
    assert not (
        tmp_path / "out" / f"{plot_file_stem('test/combined/kappa', 'data.label_fraction')}.png"
    ).exists()
    assert sum("point not drawn" in r.getMessage() for r in caplog.records) == 6
    assert "not drawn (combined_kappa_vs_data.label_fraction.csv" in caplog.records[-1].getMessage()


def test_file_names_are_safe() -> None:
    assert plot_file_stem("test/combined/kappa", "+method") == "combined_kappa_vs_method"
    assert plot_file_stem("ssl_eval/knn/kappa", "model.net['x y']") == (
        "ssl_eval_knn_kappa_vs_model.net_x_y"
    )


def test_jobs_without_the_key_are_left_out_with_a_warning(tmp_path: Path, caplog) -> None:
    multirun = fake_sweep(tmp_path / "sweep")
    extra = multirun / "99"
    (extra / ".hydra").mkdir(parents=True)
    overrides = ["+experiment=demo", "+method=pmg", "seed=0"]
    (extra / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (extra / "results.json").write_text(json.dumps({"test": {"combined": {"kappa": 0.0}}}))
    runs = collect_runs(multirun)
    with caplog.at_level(logging.WARNING, logger="fgssl"):
        key = swept_key(runs, "data.label_fraction")
    assert "job(s) ['99'] do not set data.label_fraction" in caplog.text
    points = sweep_points(runs, key, "test/combined/kappa")
    assert points["runs"].sum() == len(runs) - 1  # its 0.0 is in no point
    assert points["min"].min() == pytest.approx(kappa("pmg", "0.1", 0))


def test_keys_that_follow_the_fraction_or_the_seed_and_both_spellings_make_no_group(
    tmp_path: Path,
) -> None:
    """As a study made run by run leaves it: finetune_epochs chosen per fraction, fgssl's
    pretrained_run per seed, and older runs spelling +experiment=demo where fgssl-train now
    writes experiment=demo. Each method is still one group of 3 seeds per point."""
    root = fake_sweep(tmp_path / "sweep")
    epochs = {"0.1": 30, "0.25": 20, "1": 15}
    for folder in root.iterdir():
        path = folder / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(path.read_text())
        seed, fraction = overrides[3].split("=")[1], overrides[2].split("=")[1]
        if int(folder.name) % 2:
            overrides[0] = "experiment=demo"
        overrides.append(f"finetune_epochs={epochs[fraction]}")
        if overrides[1] == "+method=fgssl":
            overrides.append(f"pretrained_run=/study/p/s{seed}")
        path.write_text(yaml.safe_dump(overrides))
    runs = collect_runs(root)
    assert runs["configuration"].nunique() == len(METHODS) * len(FRACTIONS)  # not per seed
    points = sweep_points(runs, swept_key(runs, "data.label_fraction"), "test/combined/kappa")
    assert list(dict.fromkeys(points["group"])) == ["+method=pmg", "+method=fgssl"]
    for row in points.itertuples():
        by_hand = [kappa(row.group.split("=")[1], row._2, s) for s in SEEDS]
        assert row.n == 3 and row.mean == pytest.approx(np.mean(by_hand))


def test_following_keys_and_one_spelling_by_hand() -> None:
    runs = [
        ["+method=a", "lr=1", "epochs=30", "run=/p/s0"],
        ["method=a", "lr=2", "epochs=30", "run=/p/s1"],
        ["+method=a", "lr=1", "epochs=15", "run=/p/s0"],
        ["+method=b", "lr=1", "epochs=15"],
        ["method=b", "lr=2", "epochs=30"],
    ]
    x = ["0.1", "0.1", "1", "1", "0.1"]
    seeds = [0, 1, 0, 0, 1]
    assert following_keys(runs, x) == {"epochs"}  # method varies within a fraction
    assert following_keys(runs, seeds) == {"run", "lr"}  # run is set by some runs only
    assert following_keys(runs, [None] * len(runs)) == set()
    assert following_keys([["k=1"], ["k=1"]], [0, 1]) == set()  # one value for all: shared
    assert one_spelling(runs)[1][0] == "+method=a" and one_spelling(runs)[4][0] == "+method=b"
    assert one_spelling([["method=a"], ["+method=a"]]) == [["method=a"], ["method=a"]]
