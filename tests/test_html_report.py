"""report.html of a run and of a sweep: every section, figures embedded, and the pages as a
real headless browser loads them (Chromium from the system's packages, through Playwright)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fgssl.evaluation.calibration import reliability_bins
from fgssl.evaluation.reporting import paper_report
from fgssl.evaluation.screening import ICDR_GRADES
from fgssl.plots.calibration import plot_reliability_diagram
from fgssl.plots.confusion import plot_confusion_matrices
from fgssl.plots.html import HtmlPage
from fgssl.run.html_report import RUN_SECTIONS, write_run_html, write_sweep_html
from fgssl.run.report import summarize

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _fake_run(root: Path, *, figures: bool = True) -> Path:
    """A run directory with results.json as the pipeline writes it, some figures, config."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 60)
    heads = {h: rng.dirichlet(np.ones(5), 60) for h in ("combined", "concat")}
    results = {
        "test": {**{h: {"acc": 0.5, "kappa": None} for h in heads}, "loss": 1.2},
        "monitor": "val/combined/kappa",
        "best_val_score": 0.7,
        "class_names": list(ICDR_GRADES),
        "confusion_matrix": {h: np.eye(5, dtype=int).tolist() for h in heads},
        "timings": {"total_seconds": 12.0},
        **paper_report(heads, labels, ordinal=True, class_names=ICDR_GRADES),
    }
    root.mkdir(parents=True)
    (root / "results.json").write_text(json.dumps(results))
    (root / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "note": "<b>&"}))
    if figures:
        bins = reliability_bins(heads["combined"], labels)
        plot_reliability_diagram(bins, root / "reliability_diagram.png")
        plot_confusion_matrices(
            results["confusion_matrix"], ICDR_GRADES, root / "confusion_matrix.png"
        )
    return root


def test_page_escapes_text_and_embeds_images(tmp_path):
    page = HtmlPage("a <title>", subtitle="é")
    section = page.section("One", "one").text("<script>x</script>").table(["k", "v"], [["a", None]])
    section.image(b"\x89PNG", "alt")
    html = page.render()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<td>null</td>" in html and "data:image/png;base64,iVBORw==" in html
    assert html.isascii() and "&#233;" in html
    with pytest.raises(ValueError, match="exists already"):
        page.section("Again", "one")


def test_run_page_has_every_section(tmp_path):
    run = _fake_run(tmp_path / "run")
    html = write_run_html(run).read_text()
    for section in (*RUN_SECTIONS, "screening"):
        assert f'<section id="{section}">' in html, section
    assert html.count("data:image/png;base64,") == 2  # confusion and reliability diagram
    assert "training_curves.png: not written" in html and "gradcam.png: not written" in html
    assert "percentile bootstrap, stratified by class" in html
    assert "&lt;b&gt;&amp;" in html  # the config, escaped
    assert "referable DR: ICDR grade &gt;= 2" in html


def _fake_sweep() -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    runs = pd.DataFrame(
        {
            "job": ["0", "1", "2", "3"],
            "overrides": [["schedule=8_4_2"], ["schedule=8_4_2"], ["schedule=16_8_4"], ["x=1"]],
            "seed": [0, 1, 0, 0],
            "test/combined/kappa": [0.5, 0.7, np.nan, 0.2],
            "intervals/test/combined/kappa/low": [0.4, 0.6, np.nan, 0.1],
            "intervals/test/combined/kappa/high": [0.6, 0.8, np.nan, 0.3],
        }
    )
    runs["configuration"] = [" ".join(o) for o in runs["overrides"]]
    metrics = ["test/combined/kappa"]
    return runs, summarize(runs, metrics), metrics


def test_sweep_page_table_and_plots(tmp_path):
    runs, summary, metrics = _fake_sweep()
    html = write_sweep_html(
        runs, summary, metrics, tmp_path / "report.html", title="sweep"
    ).read_text()
    assert "0.6000 &#177; 0.1414" in html  # two seeds: mean ± std, no interval
    assert "0.2000 [0.1000, 0.3000]" in html  # one run: its bootstrap interval
    assert "&#8211; (0 of 1)" in html  # undefined in its only run
    assert html.count("data:image/png;base64,") == 2  # kappa against schedule and x


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium of the system's packages, driven by Playwright."""
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
    )
    executable = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if executable is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install -y chromium)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _load(browser, path: Path) -> tuple[object, list[str]]:
    page = browser.new_page()
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "request",
        lambda r: (
            problems.append(f"request {r.url}")
            if not r.url.startswith(("file:", "data:"))
            else None
        ),
    )
    page.goto(path.resolve().as_uri())
    return page, problems


def test_pages_render_in_a_browser(browser, tmp_path):
    run = _fake_run(tmp_path / "run")
    page, problems = _load(browser, write_run_html(run))
    for section in (*RUN_SECTIONS, "screening"):
        assert page.is_visible(f"section#{section} h2"), section
    sizes = page.eval_on_selector_all("img", "images => images.map(i => i.naturalWidth)")
    assert len(sizes) == 2 and all(width > 0 for width in sizes)
    assert problems == []
    runs, summary, metrics = _fake_sweep()
    page, problems = _load(
        browser, write_sweep_html(runs, summary, metrics, tmp_path / "s.html", title="t")
    )
    assert page.is_visible("section#results table") and page.is_visible("section#plots img")
    assert problems == []


@pytest.mark.slow
def test_a_trained_run_reports_intervals_calibration_and_its_page(tiny_run: Path, browser):
    """The pipeline's results.json: an interval for every test metric of both heads and the
    ECE, the referable-DR view (APTOS grades); reliability_diagram.png; report.html renders."""
    results = json.loads((tiny_run / "results.json").read_text())
    assert results["intervals"]["settings"]["resamples"] == 1000
    heads = {head: m for head, m in results["test"].items() if isinstance(m, dict)}
    assert set(heads) == {"combined", "concat"}
    for head, metrics in heads.items():
        intervals = results["intervals"]["test"][head]
        assert set(intervals) == {*metrics, "ece"}
        for name, value in metrics.items():
            interval = intervals[name]
            if value is None:
                assert interval["low"] is None
            elif interval["low"] is not None:
                assert interval["low"] <= interval["high"]
        assert 0 <= results["calibration"]["heads"][head]["ece"] <= 1
    assert set(results["screening"]["metrics"]) == {"sensitivity", "specificity", "auroc"}
    assert (tiny_run / "reliability_diagram.png").is_file()
    page, problems = _load(browser, tiny_run / "report.html")
    for section in (*RUN_SECTIONS, "screening", "ssl-eval"):
        assert page.is_visible(f"section#{section} h2"), section
    sizes = page.eval_on_selector_all("img", "images => images.map(i => i.naturalWidth)")
    assert len(sizes) == 5 and all(width > 0 for width in sizes)
    assert problems == []


def test_sweep_report_files_show_single_run_intervals(tmp_path):
    from fgssl.run.report import write_report

    def job(number: int, overrides: list[str], kappa: float, low: float, high: float) -> None:
        folder = tmp_path / str(number)
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        interval = {"low": low, "high": high, "undefined_resamples": 0}
        results = {
            "monitor": "val/combined/kappa",
            "test": {"combined": {"kappa": kappa}},
            "intervals": {"test": {"combined": {"kappa": interval}}},
        }
        (folder / "results.json").write_text(json.dumps(results))

    job(0, ["schedule=grids_8_4_2", "seed=0"], 0.5, 0.4, 0.6)
    job(1, ["schedule=grids_8_4_2", "seed=1"], 0.7, 0.6, 0.8)
    job(2, ["schedule=grids_16_8_4", "seed=0"], 0.2, 0.1, 0.3)
    paths = write_report(tmp_path)
    markdown = paths["markdown"].read_text()
    assert "0.200 [0.100, 0.300]" in markdown  # one run: its interval
    assert "0.600 ± 0.141 |" in markdown  # two seeds: their spread, no interval
    summary = pd.read_csv(paths["csv"])
    assert summary["test/combined/kappa low"].isna().tolist() == [True, False]
    html = paths["html"].read_text()
    assert '<section id="results">' in html and html.count("data:image/png;base64,") == 1
