"""Interrupted runs, unwritable or full output locations, checkpoints that do not fit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest
import torch

from conftest import TINY_TRAINING
from fgssl import FGSSLModule
from fgssl.errors import CheckpointError, ConfigError
from fgssl.evaluation.checkpoints import read_checkpoint
from fgssl.run.checkpointing import AtomicCheckpointIO, check_checkpoint_matches
from fgssl.run.pipeline import run_training
from helpers import RandomDataModule, tiny_trainer

FGSSL_TRAIN = Path(sys.executable).parent / "fgssl-train"
NET = {
    "_target_": "fgssl.models.FGSSLNet",
    "backbone": "resnet18",
    "num_classes": 3,
    "feat_dim": 8,
    "hidden_dim": 8,
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    module = FGSSLModule(dict(NET), schedule=[8, 4, 2])
    trainer = tiny_trainer(limit_train_batches=1, limit_val_batches=0)
    trainer.fit(module, datamodule=RandomDataModule())
    trainer.save_checkpoint(path)
    return path


def test_checkpoints_load_without_running_pickled_code(checkpoint: Path) -> None:
    loaded = read_checkpoint(checkpoint)  # torch.load(weights_only=True) inside
    assert loaded["fgssl"]["phase"] == "finetune"
    check_checkpoint_matches(loaded, checkpoint, NET)


def test_checkpoint_of_another_model_config_names_the_difference(checkpoint: Path) -> None:
    other = {**NET, "feat_dim": 16}
    with pytest.raises(CheckpointError, match="feat_dim: checkpoint 8 vs config 16"):
        check_checkpoint_matches(read_checkpoint(checkpoint), checkpoint, other)


def test_checkpoint_of_another_version_names_both(checkpoint: Path, tmp_path: Path) -> None:
    loaded = read_checkpoint(checkpoint)
    loaded["fgssl"]["version"] = "9.3.0"
    with pytest.raises(CheckpointError, match=r"fgssl 9\.3\.0, this is fgssl 0\.1"):
        check_checkpoint_matches(loaded, checkpoint, NET)


class Unwritable:
    def __reduce__(self) -> str:
        raise RuntimeError("cannot be saved")


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, path)
    with pytest.raises(RuntimeError, match="cannot be saved"):  # fails part-way through
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}, "bad": Unwritable()}, path)
    assert torch.equal(read_checkpoint(path)["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_new_checkpoint_clears_what_killed_writers_left(tmp_path: Path) -> None:
    left_behind = tmp_path / ".last.ckpt.12345.tmp.ckpt"
    left_behind.write_bytes(b"half a checkpoint")
    other = tmp_path / ".best.ckpt.12345.tmp.ckpt"
    other.write_bytes(b"another file's")
    AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, tmp_path / "last.ckpt")
    assert not left_behind.exists() and other.exists()


def test_a_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    junk = tmp_path / "notes.ckpt"
    junk.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"notes\.ckpt' is not a PyTorch checkpoint"):
        read_checkpoint(junk)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.ckpt")


def test_unwritable_output_location_is_reported_before_training(
    compose_config, aptos_root: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = compose_config("+experiment=aptos", *TINY_TRAINING, f"data.root={aptos_root}")
    with pytest.raises(ConfigError, match=r"cannot write to the run directory.*hydra\.run\.dir"):
        run_training(cfg, blocker / "run")


def test_full_disk_is_reported_before_training(
    compose_config, aptos_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("fgssl.run.checkpointing.shutil.disk_usage", lambda _: usage(10, 9, 1024))
    cfg = compose_config(
        "+experiment=aptos", *TINY_TRAINING, f"data.root={aptos_root}", "pretrain_epochs=0"
    )
    with pytest.raises(ConfigError, match=r"only 0 MiB free.*checkpoints need about"):
        run_training(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "finetune").exists()


def test_resume_needs_a_run_directory(compose_config, tmp_path: Path) -> None:
    cfg = compose_config("+experiment=demo", f"resume={tmp_path / 'nowhere'}")
    with pytest.raises(ConfigError, match="is not a run directory"):
        run_training(cfg, tmp_path / "nowhere")


@pytest.mark.slow
def test_sigterm_leaves_a_valid_checkpoint_and_the_run_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "FGSSL_DEMO_ROOT": str(tmp_path / "demo")}
    args = [
        str(FGSSL_TRAIN),
        "+experiment=demo",
        *TINY_TRAINING,
        "pretrain_epochs=12",
        "step_mode=progressive",  # K+1 optimizer steps per batch, counted below
        "finetune_epochs=1",
        "data.num_train=40",
        "data.num_test=2",
        "data.generated_size=48",
        "trainer.limit_train_batches=2",
        f"hydra.run.dir={run_dir}",
    ]
    process = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    last = run_dir / "pretrain" / "checkpoints" / "last.ckpt"
    while not last.is_file() and process.poll() is None:  # pytest-timeout guards hangs
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate()
    assert process.returncode != 0, output[-2000:]
    assert not list(run_dir.rglob("*.tmp*"))
    interrupted = read_checkpoint(last)
    steps_per_epoch = 2 * 4  # batches x (K + 1)
    assert steps_per_epoch <= interrupted["global_step"] < 12 * steps_per_epoch
    assert not (run_dir / "results.json").exists()

    resumed = subprocess.run(
        [str(FGSSL_TRAIN), f"resume={run_dir}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run_dir / "results.json").is_file()
    finished = read_checkpoint(last)
    assert finished["global_step"] == 12 * steps_per_epoch
    assert (run_dir / "finetune" / "checkpoints" / "best.ckpt").is_file()
    hydra_records = sorted(p.name for p in run_dir.iterdir() if p.name.startswith(".hydra"))
    assert hydra_records[0] == ".hydra" and hydra_records[1].startswith(".hydra-resumed-")
