"""The user's own Lightning callbacks (the ``callbacks`` group, fgssl.run.user_callbacks),
and the config checks of the other training aids."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping, Timer

from conftest import TINY_TRAINING
from fgssl.errors import ConfigError
from fgssl.run.checkpointing import every_epoch_checkpoint
from fgssl.run.config_checks import check_config
from fgssl.run.ema import WeightEMA
from fgssl.run.factory import monitor_callbacks
from fgssl.run.user_callbacks import check_user_callbacks, user_callbacks
from fgssl.rundir import PHASES, RunDir

KEYS = ["val/loss", "val/combined/kappa", "val/combined/acc"]


class Counter(pl.Callback):
    """Counts the training epochs it saw (a user's callback, built by its _target_)."""

    def __init__(self, start: int = 0) -> None:
        self.epochs = start

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.epochs += 1


def check(cfg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """check_user_callbacks against fgssl's own callbacks of a run in ``tmp_path``."""
    run = RunDir(tmp_path / "run")
    own: list[pl.Callback] = [every_epoch_checkpoint(run.last_checkpoint(p)) for p in PHASES]
    own += monitor_callbacks("val/combined/kappa", run.best_checkpoint, patience=1)[1]
    check_user_callbacks(cfg, run, [*own, WeightEMA()], KEYS)


def test_a_callback_given_on_the_command_line_is_built_for_each_phase(
    compose_config, tmp_path: Path
) -> None:
    cfg = compose_config(
        "+experiment=demo",
        "+callbacks.count._target_=test_user_callbacks.Counter",
        "+callbacks.count.start=2",
        "+callbacks.stop._target_=pytorch_lightning.callbacks.EarlyStopping",
        "+callbacks.stop.monitor=val/combined/acc",
    )
    check_config(cfg)
    check(cfg, tmp_path)
    pretrain = user_callbacks(cfg, validate=False)
    finetune = user_callbacks(cfg, validate=True)
    # the one following a validation key goes to the finetune phase only
    assert [type(c) for c in pretrain] == [Counter]
    assert [type(c) for c in finetune] == [Counter, EarlyStopping]
    assert pretrain[0] is not finetune[0] and finetune[0].epochs == 2  # type: ignore[attr-defined]


def test_the_timer_choice_of_the_group(compose_config) -> None:
    cfg = compose_config(
        "+experiment=demo", "callbacks=timer", "callbacks.timer.duration=00:00:01:00"
    )
    (timer,) = user_callbacks(cfg, validate=True)
    assert isinstance(timer, Timer) and timer._duration == 60.0
    assert compose_config("+experiment=demo").callbacks == {}


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            ["+callbacks.ckpt._target_=pytorch_lightning.callbacks.ModelCheckpoint"],
            r"callbacks.ckpt: this ModelCheckpoint has no dirpath.*best.ckpt and last.ckpt",
        ),
        (
            [
                "+callbacks.ckpt._target_=pytorch_lightning.callbacks.ModelCheckpoint",
                "+callbacks.ckpt.dirpath={run}/finetune/checkpoints/mine",
            ],
            r"writes to .*finetune/checkpoints/mine.*overwrite or delete",
        ),
        (
            [
                "+callbacks.ckpt._target_=pytorch_lightning.callbacks.ModelCheckpoint",
                "+callbacks.ckpt.dirpath={elsewhere}",
            ],
            r"callbacks.ckpt: its state in the checkpoints would take the place of fgssl's "
            r"own RelocatableModelCheckpoint",
        ),
        (
            [
                "+callbacks.stop._target_=pytorch_lightning.callbacks.EarlyStopping",
                "+callbacks.stop.monitor=val/combined/kappa",
                "+callbacks.stop.mode=max",
            ],
            r"callbacks.stop: its state .* fgssl's own EarlyStopping",
        ),
        (
            ["+callbacks.ema._target_=fgssl.run.ema.WeightEMA"],
            r"callbacks.ema: its state .* fgssl's own WeightEMA",
        ),
        (
            [
                "+callbacks.avg._target_=pytorch_lightning.callbacks.EMAWeightAveraging",
                "ema.enabled=true",
            ],
            r"callbacks.avg: EMAWeightAveraging and ema.enabled=true both",
        ),
        (
            [
                "+callbacks.stop._target_=pytorch_lightning.callbacks.EarlyStopping",
                "+callbacks.stop.monitor=val/combined/kapa",
            ],
            r"callbacks.stop monitors 'val/combined/kapa'.*val/combined/kappa",
        ),
    ],
    ids=[
        "no-dirpath",
        "in-checkpoints",
        "same-state",
        "same-early-stop",
        "ema",
        "two-averages",
        "misspelt",
    ],
)
def test_what_would_break_fgssls_checkpointing_is_refused_with_the_reason(
    compose_config, tmp_path: Path, overrides: list[str], match: str
) -> None:
    filled = [o.format(run=tmp_path / "run", elsewhere=tmp_path / "mine") for o in overrides]
    cfg = compose_config("+experiment=demo", *filled)
    with pytest.raises(ConfigError, match=match):
        check(cfg, tmp_path)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        (
            "+callbacks.x._target_=builtins.dict",
            r"callbacks.x: builtins.dict built a dict, not a pytorch_lightning.Callback",
        ),
        ("+callbacks.x._target_=no.such.Callback", r"callbacks.x: cannot build no.such.Callback"),
        ("+callbacks.x=3", r"callbacks.x: expected a callback config with a _target_"),
    ],
)
def test_a_callback_that_cannot_be_built_is_refused_before_any_data(
    compose_config, override: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        check_config(compose_config("+experiment=demo", override))


def test_the_trainers_callbacks_key_points_to_the_group(compose_config) -> None:
    cfg = compose_config("+experiment=demo", "+trainer.callbacks=[]")
    with pytest.raises(ConfigError, match=r"trainer.callbacks .* the callbacks group"):
        check_config(cfg)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["+trainer.accumulate_grad_batches=4"], r"set optim.accumulate_grad_batches=4 instead"),
        (["optim.accumulate_grad_batches=0"], r"optim.accumulate_grad_batches=0: expected"),
        (["mixup.enabled=true", "data.batch_size=7"], r"data.batch_size=7: .* even batch"),
        (["mixup.enabled=true", "mixup.mode=all"], r"mixup.mode='all'"),
        (["ema.enabled=true", "ema.decay=2"], r"ema.decay=2"),
        (["ema.enabled=true", "ema.phases=[test]"], r"ema.phases"),
    ],
)
def test_bad_training_aid_settings_are_refused_in_one_line(
    compose_config, overrides: list[str], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        check_config(compose_config("+experiment=demo", *TINY_TRAINING, *overrides))
