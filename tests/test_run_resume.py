"""An interrupted and resumed run ends exactly where an uninterrupted one does (CPU)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import hydra.utils
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
import yaml
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

import fgssl
import fgssl.run.pipeline
from conftest import TINY_TRAINING
from fgssl import BarlowTwinsLoss, FGSSLModule
from fgssl.errors import ConfigError
from fgssl.evaluation import load_checkpoint
from fgssl.evaluation.checkpoints import read_checkpoint
from fgssl.run.checkpointing import RelocatableModelCheckpoint
from fgssl.run.pipeline import run_training
from fgssl.run.resume import check_resume_split, resumed_config
from fgssl.rundir import RunDir

FGSSL_TRAIN = Path(sys.executable).parent / "fgssl-train"


class InterruptAt(pl.Callback):
    """Ctrl-C in finetune epoch ``epoch``, before its batch ``batch``."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: object, batch_idx: int
    ) -> None:
        if (pl_module.phase, trainer.current_epoch, batch_idx) == (
            "finetune",
            self.epoch,
            self.batch,
        ):
            raise KeyboardInterrupt


# the training aids whose state must survive: an open accumulation group (batch 1 of a group
# of 2), the EMA of both phases, the mixing draws
AIDS = ["optim.accumulate_grad_batches=2", "ema.enabled=true", "ema.phases=[pretrain,finetune]"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("epoch", "batch", "step_mode", "aids"),
    [
        (2, 0, "progressive", []),
        (1, 1, "progressive", []),
        # worker processes: Lightning builds the iterator (which draws the order and starts
        # reading) before it restores the epoch, so the data module must know it already
        (1, 1, "fused", ["data.num_workers=2"]),
        (1, 1, "progressive", [*AIDS, "mixup.enabled=true"]),
    ],
    ids=["at-an-epoch-start", "mid-epoch", "mid-epoch-fused-workers", "mid-group-ema-mixup"],
)
def test_resumed_run_matches_the_uninterrupted_run(
    compose_config,
    aptos_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    epoch: int,
    batch: int,
    step_mode: str,
    aids: list[str],
) -> None:
    overrides = [
        "+experiment=aptos",
        *TINY_TRAINING,
        f"data.root={aptos_root}",
        "pretrain_epochs=1",
        "finetune_epochs=3",
        "trainer.deterministic=true",
        f"step_mode={step_mode}",
        "data.folds=3",  # a fold of a cross-validation, tested with TTA, resumes alike
        "data.fold=1",
        "tta=flips",
        *aids,
    ]
    whole = run_training(compose_config(*overrides), tmp_path / "whole")

    build_trainer = fgssl.run.pipeline.build_trainer

    def interrupting_trainer(*args, **kwargs):  # type: ignore[no-untyped-def]
        trainer = build_trainer(*args, **kwargs)
        trainer.callbacks.insert(0, InterruptAt(epoch, batch))
        return trainer

    monkeypatch.setattr(fgssl.run.pipeline, "build_trainer", interrupting_trainer)
    with pytest.raises(SystemExit):  # Lightning exits after a graceful Ctrl-C shutdown
        run_training(compose_config(*overrides), tmp_path / "parts")
    last = Path("finetune", "checkpoints", "last.ckpt")
    interrupted = read_checkpoint(tmp_path / "parts" / last)
    # the end of the epoch before the interrupted one; that epoch is redone
    assert interrupted["epoch"] == epoch - 1
    assert not (tmp_path / "parts" / "results.json").exists()

    monkeypatch.setattr(fgssl.run.pipeline, "build_trainer", build_trainer)
    resumed = run_training(
        compose_config(*overrides, f"resume={tmp_path / 'parts'}"), tmp_path / "parts"
    )
    final = [read_checkpoint(path / last) for path in (tmp_path / "whole", tmp_path / "parts")]
    whole_steps = final[0]["global_step"]
    steps_per_epoch = whole_steps // 3
    assert interrupted["global_step"] == epoch * steps_per_epoch
    assert final[1]["epoch"] == final[0]["epoch"] == 2
    assert final[1]["global_step"] == whole_steps
    for name, value in final[0]["state_dict"].items():
        assert torch.equal(value, final[1]["state_dict"][name]), name
    if "ema.enabled=true" in aids:  # the EMA's training weights and update count too
        ema = [checkpoint["fgssl_ema"] for checkpoint in final]
        assert ema[0]["updates"] == ema[1]["updates"] > 0
        for name, value in ema[0]["training_state"].items():
            assert torch.equal(value, ema[1]["training_state"][name]), name
    assert resumed["test"] == whole["test"]
    assert resumed["best_val_score"] == whole["best_val_score"]
    saved = json.loads((tmp_path / "parts" / "results.json").read_text())
    assert saved["test"] == whole["test"]  # kappa_thresholded too
    assert saved["ordinal_thresholds"] == whole["ordinal_thresholds"]
    for split in ("test", "val"):  # the fold's out-of-fold and test predictions
        predictions = [
            pd.read_csv(RunDir(path).predictions(split), dtype={"id": str})
            for path in (tmp_path / "whole", tmp_path / "parts")
        ]
        pd.testing.assert_frame_equal(*predictions)
    # the resumed run's log holds each epoch once, as the uninterrupted run logged it
    for phase in ("pretrain", "finetune"):
        logs = [
            pd.read_csv(path / phase / "metrics.csv")
            for path in (tmp_path / "whole", tmp_path / "parts")
        ]
        pd.testing.assert_frame_equal(*(_sorted(log) for log in logs))
    # the SSL evaluation of the pretrained weights, read back from the pretrain checkpoint
    for protocol in ("linear_probe", "knn"):
        assert saved["ssl_eval"][protocol] == whole["ssl_eval"][protocol]


def _sorted(log: pd.DataFrame) -> pd.DataFrame:
    """Rows by (epoch, step), then by their values (several rows share a step)."""
    log = log[sorted(log.columns)]
    return log.sort_values(["epoch", "step", *log.columns], na_position="first").reset_index(
        drop=True
    )


# ----------------------------------------------------------- resume=<run> with overrides


@pytest.fixture
def saved_run(compose_config, tmp_path: Path) -> Path:
    """A run directory holding only what resumed_config reads: config.yaml (of the demo,
    3 finetune epochs) and the group choices of its first launch."""
    cfg = compose_config(
        "+experiment=demo", *TINY_TRAINING, "pretrain_epochs=2", "finetune_epochs=3"
    )
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    choices = {"experiment": "demo", "data": "demo", "logger": "csv", "model": "fgssl"}
    (run / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
    )
    return run


def _saved(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def test_resume_applies_the_overrides_that_are_safe_to_change(saved_run: Path) -> None:
    cfg = resumed_config(
        saved_run,
        [
            f"resume={saved_run}",
            "data.root=/moved/data",
            "finetune_epochs=5",
            "data.num_workers=0",
            "trainer.devices=2",
            "figures.enabled=false",
            "optim.implementation=fused",
            "hydra.verbose=true",
        ],
        output_dir=saved_run,
    )
    resumed = OmegaConf.to_container(cfg, resolve=True)
    expected = _saved(saved_run)
    expected["data"].update(root="/moved/data", num_workers=0)
    expected["trainer"]["devices"] = 2
    expected["figures"]["enabled"] = False
    expected["optim"]["implementation"] = "fused"
    expected.update(finetune_epochs=5, resume=str(saved_run))
    assert resumed == expected  # those keys, and nothing else


def test_resume_refuses_other_overrides_in_one_line_naming_them(saved_run: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resumed_config(
            saved_run, ["model.net.feat_dim=8", "data.root=/moved", "optim.lr=0.5", "+foo=1"]
        )
    message = str(caught.value)
    assert "\n" not in message
    assert "model.net.feat_dim=8 (the run has 16)" in message
    assert "optim.lr=0.5 (the run has" in message
    assert "+foo=1 (the run has absent)" in message
    assert "data.root" not in message  # allowed


def test_resume_extends_epochs_but_never_shrinks_them(saved_run: Path) -> None:
    with pytest.raises(ConfigError, match=r"finetune_epochs=2 \(epochs can only be extended"):
        resumed_config(saved_run, ["finetune_epochs=2"])
    assert resumed_config(saved_run, ["pretrain_epochs=4"]).pretrain_epochs == 4
    # once the finetune phase has a checkpoint, the pretrain phase is over
    last = saved_run / "finetune" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"pretrain_epochs=4 \(the pretrain phase is over"):
        resumed_config(saved_run, ["pretrain_epochs=4"])
    assert resumed_config(saved_run, ["finetune_epochs=4"]).finetune_epochs == 4


def test_resume_passes_repeated_values_and_group_choices(compose_config, saved_run: Path) -> None:
    """The run's own command line with resume=... added changes nothing."""
    overrides = ["+experiment=demo", "model.net.feat_dim=16", "finetune_epochs=3"]
    cfg = resumed_config(
        saved_run, overrides, choices={"experiment": "demo", "data": "demo", "logger": "csv"}
    )
    assert OmegaConf.to_container(cfg) == {**_saved(saved_run), "resume": str(saved_run)}
    with pytest.raises(ConfigError, match=r"\+experiment=aptos \(a config group"):
        resumed_config(saved_run, ["+experiment=aptos"], choices={"experiment": "aptos"})
    # another logger group is taken from the config Hydra composed
    composed = compose_config("+experiment=demo", "logger=tensorboard")
    cfg = resumed_config(
        saved_run, ["logger=tensorboard"], composed=composed, choices={"logger": "tensorboard"}
    )
    assert set(cfg.logger) == {"csv", "tensorboard"}


def test_resume_continues_in_the_run_directory_only(saved_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="continues the run in its own directory"):
        resumed_config(saved_run, [], output_dir=tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match=r"no config\.yaml there"):
        resumed_config(tmp_path, [])


def test_resumed_data_must_give_the_runs_split(tmp_path: Path) -> None:
    split = pd.DataFrame(
        {"id": ["a", "b", "c"], "label": [0, 1, 1], "split": ["train", "val", "test"]}
    )
    saved = tmp_path / "split.csv"
    split.assign(labelled=True).to_csv(saved, index=False)
    check_resume_split(saved, split)  # the same images: passes
    check_resume_split(tmp_path / "none.csv", split.iloc[:1])  # nothing saved: passes
    with pytest.raises(ConfigError, match=r"2 images now, 3 before, 1 .* differ, e.g. \('c'"):
        check_resume_split(saved, split.iloc[:2])
    relabelled = split.assign(label=[0, 1, 2])
    with pytest.raises(ConfigError, match=r"2 \(id, label, split\) rows differ"):
        check_resume_split(saved, relabelled)


# ------------------------------------------------------------- movable run directories


def _checkpoint_state(dirpath: Path) -> dict:
    """The saved state of a best-score ModelCheckpoint in ``dirpath`` after two epochs."""
    callback = ModelCheckpoint(dirpath=dirpath, filename="best", monitor="val/acc", mode="max")
    best = str(callback.dirpath) + "/best.ckpt"
    callback.best_k_models = {best: torch.tensor(0.9)}
    callback.best_model_path = callback.kth_best_model_path = best
    callback.best_model_score = callback.kth_value = torch.tensor(0.9)
    callback.current_score = torch.tensor(0.5)
    return callback.state_dict()


def test_checkpoint_state_follows_a_moved_run_directory(tmp_path: Path) -> None:
    state = _checkpoint_state(tmp_path / "old" / "checkpoints")
    new_dir = tmp_path / "new" / "checkpoints"
    moved = RelocatableModelCheckpoint(
        dirpath=new_dir, filename="best", monitor="val/acc", mode="max"
    )
    assert moved.state_key == ModelCheckpoint(monitor="val/acc", mode="max").state_key
    moved.load_state_dict(state)
    new_best = str(new_dir / "best.ckpt")
    assert moved.best_model_score == torch.tensor(0.9)  # the best score is kept
    assert moved.best_model_path == moved.kth_best_model_path == new_best
    assert moved.best_k_models == {new_best: torch.tensor(0.9)}
    assert moved.kth_value == torch.tensor(0.9)
    # what Lightning's own callback does: it forgets the best score, and keeps the old path
    with pytest.warns(UserWarning, match="dirpath has changed"):
        plain = ModelCheckpoint(dirpath=new_dir, monitor="val/acc", mode="max")
        plain.load_state_dict(state)
    assert plain.best_model_score is None
    assert plain.best_model_path == str(tmp_path / "old" / "checkpoints" / "best.ckpt")


class ScriptedScores(pl.Callback):
    """Replace the finetune phase's monitored score of each epoch by ``scores[epoch]``
    (runs before the checkpoint callbacks, which Lightning puts last)."""

    def __init__(self, monitor: str, scores: list[float]):
        self.monitor, self.scores = monitor, scores

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after the last epoch, a graded run validates its best checkpoint once more to fit
        # its ordinal thresholds: no epoch's score to script there
        scripted = trainer.current_epoch < len(self.scores)
        if pl_module.phase == "finetune" and not trainer.sanity_checking and scripted:
            score = self.scores[trainer.current_epoch]
            trainer.callback_metrics[self.monitor] = torch.tensor(score)


@pytest.mark.slow
def test_a_moved_run_directory_resumes_like_one_left_in_place(
    compose_config, aptos_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The best epoch (0) comes before the interruption (in epoch 2): the resumed epoch,
    worse, must not become the best, whether the run was resumed in place or moved (and its
    data with it), and the moved run must not read its old folder."""
    monitor = "val/combined/acc"
    overrides = [
        "+experiment=aptos",
        *TINY_TRAINING,
        f"data.root={aptos_copy}",
        "pretrain_epochs=1",
        "finetune_epochs=3",
        "trainer.deterministic=true",
        f"monitor={monitor}",
        "figures.enabled=false",
        "ssl_eval.enabled=false",
    ]
    build_trainer = fgssl.run.pipeline.build_trainer
    interrupt = [InterruptAt(2, 0)]

    def scripted_trainer(*args, **kwargs):  # type: ignore[no-untyped-def]
        trainer = build_trainer(*args, **kwargs)
        trainer.callbacks[:0] = [*interrupt, ScriptedScores(monitor, [0.9, 0.5, 0.4])]
        return trainer

    monkeypatch.setattr(fgssl.run.pipeline, "build_trainer", scripted_trainer)
    place = tmp_path / "in-place"
    with pytest.raises(SystemExit):
        run_training(compose_config(*overrides), place)
    interrupt.clear()
    moved = Path(shutil.copytree(place, tmp_path / "moved"))
    in_place = run_training(compose_config(*overrides, f"resume={place}"), place)

    shutil.rmtree(place)  # the moved run cannot read the old folder
    new_root = aptos_copy.rename(tmp_path / "moved-data")
    cfg = resumed_config(moved, [f"resume={moved}", f"data.root={new_root}"], output_dir=moved)
    resumed = run_training(cfg, moved)

    best = Path("finetune", "checkpoints", "best.ckpt")
    for results in (in_place, resumed):
        assert results["best_val_score"] == pytest.approx(0.9)
        assert results["best_checkpoint"] == str(best)
    assert read_checkpoint(moved / best)["epoch"] == 0
    assert resumed["test"] == in_place["test"]
    saved = json.loads((moved / "results.json").read_text())
    assert saved["test"] == in_place["test"] and saved["best_val_score"] == pytest.approx(0.9)
    assert yaml.safe_load((moved / "config.yaml").read_text())["data"]["root"] == str(new_root)
    assert str(place) not in (moved / "results.json").read_text()


@pytest.mark.slow
def test_more_finetune_epochs_extend_a_copied_finished_run(tiny_run: Path, tmp_path: Path) -> None:
    original = {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*")}
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    before = pd.read_csv(run / "finetune" / "metrics.csv")
    before = before[before["test/loss"].isna()]  # the training epochs; the test is logged anew
    assert set(before["epoch"].dropna()) == {0, 1}  # tiny_run: finetune_epochs=2
    cfg = resumed_config(
        run, [f"resume={run}", "finetune_epochs=3", "figures.enabled=false"], output_dir=run
    )
    results = run_training(cfg, run)
    last = read_checkpoint(run / "finetune" / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 2
    after = pd.read_csv(run / "finetune" / "metrics.csv")
    assert set(after.loc[after["val/loss"].notna(), "epoch"]) == {0, 1, 2}
    assert after["test/loss"].notna().sum() == 1
    kept = after[after["step"] <= before["step"].max()].reset_index(drop=True)
    pd.testing.assert_frame_equal(_sorted(kept), _sorted(before.reset_index(drop=True)))
    assert yaml.safe_load((run / "config.yaml").read_text())["finetune_epochs"] == 3
    assert {p: p.stat().st_mtime_ns for p in tiny_run.rglob("*")} == original  # untouched
    assert json.loads((run / "results.json").read_text())["test"] == results["test"]


def test_fgssl_train_refuses_an_unsafe_resume_override_in_one_line(saved_run: Path) -> None:
    """Through the command line: Hydra's record of the overrides reaches resumed_config."""
    result = subprocess.run(
        [str(FGSSL_TRAIN), f"resume={saved_run}", "model.net.feat_dim=8", "data.root=/moved"],
        cwd=saved_run.parent,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("fgssl-train:")]
    assert f"fgssl-train: error: resume='{saved_run}' cannot change model.net.feat_dim=8" in line
    assert "data.root" not in line.split("cannot change", 1)[1].split(":", 1)[0]
    assert "Traceback" not in result.stderr
    assert _saved(saved_run)["model"]["net"]["feat_dim"] == 16  # config.yaml untouched


def test_a_run_saved_before_the_run_package_resumes_with_its_logger(saved_run: Path) -> None:
    """config.yaml of runs written before issue 12 names fgssl.metrics_log's logger."""
    saved = _saved(saved_run)
    saved["logger"] = {"csv": {"_target_": "fgssl.metrics_log.ContinuingCSVLogger"}}
    (saved_run / "config.yaml").write_text(yaml.safe_dump(saved))
    cfg = resumed_config(saved_run, [f"resume={saved_run}"], output_dir=saved_run)
    assert cfg.logger.csv._target_ == "fgssl.run.metrics_log.ContinuingCSVLogger"
    logger = hydra.utils.instantiate(cfg.logger.csv, save_dir=str(saved_run), name="finetune")
    assert type(logger).__module__ == "fgssl.run.metrics_log"


def test_a_checkpoint_without_an_objective_loads_with_barlow_twins(tmp_path: Path) -> None:
    """Checkpoints written before the objective was a config choice have no 'objective'
    hyper-parameter: they rebuild with Barlow Twins and their barlow_lambda/barlow_scale."""
    net = {"_target_": "fgssl.models.BaselineNet", "backbone": "resnet18", "num_classes": 3}
    module = FGSSLModule(net={**net, "pretrained": False}, schedule=[], barlow_scale=0.25)
    path = tmp_path / "old.ckpt"
    hparams = dict(module.hparams)
    del hparams["objective"]
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": hparams,
            "fgssl": {"version": fgssl.__version__, "phase": "finetune"},
        },
        path,
    )
    loaded = load_checkpoint(path)
    assert isinstance(loaded.ssl_loss, BarlowTwinsLoss) and loaded.ssl_loss.scale == 0.25
    for key, value in module.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
