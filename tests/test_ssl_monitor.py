"""The pretrain monitor: collapse indicators against independent computations, and the
callback in a short pretrain phase (logged rows, warnings, no effect on the training)."""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from pytorch_lightning.loggers import CSVLogger

from fgssl import FGSSLModule
from fgssl.data import APTOS2019DataModule
from fgssl.errors import ConfigError
from fgssl.evaluation.collapse import collapse_indicators, normalized_std, rankme
from fgssl.evaluation.monitor import SSLMonitor
from helpers import one_thread, tiny_net, tiny_trainer

single_thread = pytest.fixture(autouse=True)(one_thread)


def numpy_rankme(z: np.ndarray, eps: float = 1e-7) -> float:
    """Garrido et al. 2023, eq. 1, written out with numpy's SVD."""
    s = np.linalg.svd(z, compute_uv=False)
    p = s / np.abs(s).sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def numpy_std(z: np.ndarray) -> float:
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    return float(unit.std(axis=0, ddof=1).mean())


# ------------------------------------------------------------------ collapse indicators
def test_rankme_and_std_match_numpy_on_a_random_low_rank_matrix() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 5)) @ rng.normal(size=(5, 32)) + 0.01 * rng.normal(size=(50, 32))
    assert rankme(torch.from_numpy(z)) == pytest.approx(numpy_rankme(z), rel=1e-9)
    assert normalized_std(torch.from_numpy(z)) == pytest.approx(numpy_std(z), rel=1e-9)
    assert 4 < rankme(torch.from_numpy(z)) < 6  # about the 5 directions it has


def test_a_collapsed_embedding_has_rank_one_and_std_zero() -> None:
    z = torch.randn(1, 64).repeat(200, 1)  # every image, the same vector
    indicators = collapse_indicators(z)
    assert indicators.rank == pytest.approx(1.0, abs=1e-3)
    assert indicators.std == pytest.approx(0.0, abs=1e-7)
    assert indicators.collapsed


def test_an_isotropic_gaussian_has_full_rank_and_std_one_over_sqrt_d() -> None:
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 64, generator=generator, dtype=torch.float64)
    indicators = collapse_indicators(z)
    assert indicators.rank > 0.97 * 64
    assert indicators.std == pytest.approx(1 / math.sqrt(64), rel=0.02)
    assert indicators.std_ratio == pytest.approx(1.0, rel=0.02)
    assert not indicators.collapsed
    # with fewer images than dimensions, the rank is bounded by the images
    assert 0.9 * 30 < rankme(z[:30]) <= 30


def test_two_equal_orthogonal_directions_have_rank_two() -> None:
    z = torch.zeros(10, 8)
    z[:5, 0] = 3.0
    z[5:, 1] = 3.0
    assert rankme(z) == pytest.approx(2.0, rel=1e-5)
    indicators = collapse_indicators(z)
    assert indicators.rank_threshold == 2.0  # 1 % of min(N, D) is below the floor of 2
    assert not indicators.collapsed  # two directions are the least that is not collapse
    assert collapse_indicators(z[:5]).collapsed  # one direction


def test_undefined_indicators_are_nan_not_zero() -> None:
    assert math.isnan(normalized_std(torch.randn(1, 8)))  # one image: no spread
    assert math.isnan(rankme(torch.zeros(5, 8)))  # no singular-value distribution
    zeros = collapse_indicators(torch.zeros(5, 8))
    assert zeros.collapsed  # the std (0) still flags it


# -------------------------------------------------------------------------- callback
@pytest.fixture
def datamodule(aptos_root: Path) -> APTOS2019DataModule:
    dm = APTOS2019DataModule(
        aptos_root,
        image_size=32,
        resize_size=36,
        batch_size=8,
        eval_batch_size=16,
        num_workers=0,
        phase="pretrain",
    )
    dm.setup()
    return dm


def pretrain(
    datamodule: APTOS2019DataModule, tmp_path: Path, monitor: SSLMonitor | None, epochs: int = 2
) -> FGSSLModule:
    torch.manual_seed(0)
    module = FGSSLModule(tiny_net(), phase="pretrain", schedule=[8, 4, 2], lr=0.01)
    trainer = tiny_trainer(
        max_epochs=epochs,
        limit_train_batches=2,
        limit_val_batches=0,
        deterministic=True,
        logger=CSVLogger(tmp_path, name="pretrain", version=""),
        callbacks=[monitor] if monitor else [],
    )
    trainer.fit(module, datamodule=datamodule)
    return module


def test_monitor_logs_the_reference_and_every_epoch_without_changing_the_training(
    datamodule: APTOS2019DataModule, tmp_path: Path
) -> None:
    monitor = SSLMonitor(every_n_epochs=1)
    with_monitor = pretrain(datamodule, tmp_path / "a", monitor)
    without = pretrain(datamodule, tmp_path / "b", None)
    for (name, a), b in zip(
        with_monitor.state_dict().items(), without.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name  # no random number drawn from the training's streams

    table = pd.read_csv(tmp_path / "a" / "pretrain" / "metrics.csv")
    rows = table.dropna(subset=["monitor/epochs_trained"])
    assert rows["monitor/epochs_trained"].tolist() == [0, 1, 2]
    assert rows["epoch"].isna().tolist() == [True, False, False]  # the reference has no epoch
    heads = with_monitor.net.stage_names
    for head in heads:
        assert rows[f"monitor/{head}/rankme"].between(1, 16).all()
        assert rows[f"monitor/{head}/std"].between(0, 1).all()
    assert rows["monitor/knn/kappa"].notna().all()
    assert len(monitor.history) == 3 and len(monitor.seconds) == 3

    # the logged k-NN score is the protocol's: recompute it on the final network
    recomputed = SSLMonitor().measure(with_monitor.net, datamodule, torch.device("cpu"))
    assert recomputed["monitor/knn/kappa"] == pytest.approx(rows["monitor/knn/kappa"].iloc[-1])


def test_monitor_every_n_epochs_and_off(datamodule: APTOS2019DataModule, tmp_path: Path) -> None:
    monitor = SSLMonitor(every_n_epochs=2, reference=False)
    pretrain(datamodule, tmp_path / "a", monitor, epochs=3)
    assert [r["monitor/epochs_trained"] for r in monitor.history] == [2, 3]  # and the last
    off = SSLMonitor(every_n_epochs=0)
    pretrain(datamodule, tmp_path / "b", off, epochs=1)
    assert off.history == []
    with pytest.raises(ConfigError, match="every_n_epochs"):
        SSLMonitor(every_n_epochs=-1)


def test_a_collapsed_head_is_named_in_a_warning(
    datamodule: APTOS2019DataModule, caplog: pytest.LogCaptureFixture
) -> None:
    net = tiny_net()
    with torch.no_grad():
        # the BN1d before the ELU: weight 0, bias 1 give every image the same embedding
        last_norm = list(net.heads[1].children())[-2]
        assert isinstance(last_norm, torch.nn.BatchNorm1d)
        last_norm.weight.zero_()
        last_norm.bias.fill_(1.0)
    with caplog.at_level(logging.WARNING, logger="fgssl.evaluation.monitor"):
        row = SSLMonitor().measure(net, datamodule, torch.device("cpu"), epochs_trained=3)
    name = net.stage_names[1]
    assert row[f"monitor/{name}/std"] == pytest.approx(0.0, abs=1e-6)
    assert row[f"monitor/{name}/rankme"] == pytest.approx(1.0, abs=1e-2)
    warnings = {r.getMessage() for r in caplog.records if r.levelno == logging.WARNING}
    ours = [m for m in warnings if f"head {name!r} has collapsed after 3 epoch(s)" in m]
    assert len(ours) == 1 and "x sqrt(D) = 0," in ours[0]
    assert net.training  # the pass leaves the network in the mode it found it
    # at random initialisation (epoch 0) a narrow embedding is expected: INFO, no warning
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fgssl.evaluation.monitor"):
        SSLMonitor().measure(net, datamodule, torch.device("cpu"), epochs_trained=0)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(repr(name) in r.getMessage() for r in caplog.records)


@pytest.fixture(autouse=True)
def _quiet_lightning() -> Iterator[None]:
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    yield


def test_monitor_panels_from_metrics_csv(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    from fgssl.plots.monitor import MONITOR_PANELS, plot_monitor_panels, read_monitor_series

    csv = tmp_path / "metrics.csv"
    pd.DataFrame(
        {
            "epoch": [math.nan, 0, 0, 1, 1],
            "step": [0, 4, 4, 8, 8],
            "pretrain/concat_loss_epoch": [math.nan, 3.0, math.nan, 2.0, math.nan],
            "monitor/epochs_trained": [0, math.nan, 1, math.nan, 2],
            "monitor/knn/kappa": [0.1, math.nan, math.nan, math.nan, 0.3],
            "monitor/concat/rankme": [5.0, math.nan, 6.0, math.nan, 7.0],
            "monitor/concat/std": [0.1, math.nan, 0.2, math.nan, 0.25],
            "monitor/embedding_dim": [16, math.nan, 16, math.nan, 16],
        }
    ).to_csv(csv, index=False)
    series = read_monitor_series(csv)
    assert series.index.tolist() == [0, 1, 2]
    figure = Figure()
    axes = list(figure.subplots(1, MONITOR_PANELS))
    plot_monitor_panels(axes, series)
    knn = axes[0].lines[0].get_ydata()
    assert knn[0] == 0.1 and math.isnan(knn[1]) and knn[2] == 0.3  # undefined: a gap, not 0
    assert list(axes[1].lines[0].get_ydata()) == [5.0, 6.0, 7.0]
    assert axes[2].lines[-1].get_ydata()[0] == pytest.approx(0.25)  # the 1/sqrt(D) line
    assert read_monitor_series(tmp_path / "metrics.csv").shape[1] == 4


def test_every_pretrain_run_logs_and_draws_the_monitor(tiny_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    from fgssl.plots.curves import plot_training_curves
    from fgssl.plots.monitor import read_monitor_series
    from fgssl.rundir import RunDir

    run = RunDir(tiny_run)
    series = read_monitor_series(run.metrics("pretrain"))
    assert series.index.tolist() == [0, 1]  # the random-weight reference, then epoch 1
    heads = {c.split("/")[1] for c in series.columns if c.endswith("/rankme")}
    assert heads == {"stage1", "stage2", "stage3", "concat"}
    assert series["monitor/knn/kappa"].notna().all()
    # training_curves.png gets the monitor's row of panels below the losses
    with_monitor = Image.open(plot_training_curves(tiny_run, tmp_path / "curves.png")).size
    for phase in ("finetune",):
        (tmp_path / "plain" / phase).mkdir(parents=True)
        shutil.copy(run.metrics(phase), tmp_path / "plain" / phase)
    without = Image.open(plot_training_curves(tmp_path / "plain", tmp_path / "plain.png")).size
    assert with_monitor[1] == 2 * without[1]
