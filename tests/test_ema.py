"""The EMA of the weights (fgssl.run.ema, ``ema.*``): the formula by hand, validation and
checkpoints hold the average, resume restores both, and its settings are checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from fgssl.errors import ConfigError
from fgssl.module import FGSSLModule
from fgssl.run.ema import EMA_CHECKPOINT_KEY, WeightEMA, ema_callback
from helpers import RandomDataModule, one_thread, tiny_module, tiny_trainer

single_thread = pytest.fixture(autouse=True)(one_thread)


class Recorder(pl.Callback):
    """The network's floating-point weights after every training batch."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:  # type: ignore[no-untyped-def]
        self.states.append(
            {k: v.clone() for k, v in pl_module.net.state_dict().items() if v.is_floating_point()}
        )


def fit_with_ema(ema: WeightEMA, **module_options: object) -> tuple[FGSSLModule, Recorder]:
    module = tiny_module(step_mode="fused", **module_options)
    recorder = Recorder()
    trainer = tiny_trainer(limit_train_batches=3, limit_val_batches=0, callbacks=[recorder, ema])
    trainer.fit(module, datamodule=RandomDataModule())
    return module, recorder


@pytest.mark.parametrize("warmup", [False, True])
def test_the_average_is_the_ema_formula_by_hand(warmup: bool) -> None:
    """e_1 = w_1; e_t = d_t e_{t-1} + (1 - d_t) w_t with d_t = 0.9, or with timm's warm-up
    min(0.9, 1 - t^(-2/3)); the network holds the average when the fit ends."""
    module, recorder = fit_with_ema(WeightEMA(0.9, warmup=warmup))
    assert len(recorder.states) == 3
    expected = dict(recorder.states[0])
    for t, state in enumerate(recorder.states[1:], start=2):
        decay = min(0.9, 1 - t ** (-2 / 3)) if warmup else 0.9
        expected = {k: decay * expected[k] + (1 - decay) * state[k] for k in expected}
    final = module.net.state_dict()
    for name, value in expected.items():
        torch.testing.assert_close(final[name], value, rtol=1e-5, atol=1e-6)
    # the control: the average is not the last weights
    name = "classifiers.3.weight"
    assert not torch.allclose(final[name], recorder.states[-1][name])


def test_an_accumulation_group_updates_the_average_once() -> None:
    ema = WeightEMA(0.5)
    _, recorder = fit_with_ema(ema, accumulate_grad_batches=2)  # 3 batches: groups [0 1] [2]
    assert len(recorder.states) == 3
    assert ema.updates == 2
    assert ema.ema is None  # handed over to the network at the end of the fit


def test_validation_scores_the_average_and_training_continues_with_its_own_weights() -> None:
    module = tiny_module(step_mode="fused")
    ema, recorder = WeightEMA(0.5), Recorder()
    trainer = tiny_trainer(limit_train_batches=2, limit_val_batches=1, callbacks=[recorder, ema])
    data = RandomDataModule()
    trainer.fit(module, datamodule=data)
    batch = next(iter(data.val_dataloader()))
    module.eval()
    with torch.no_grad():  # the network holds the average after the fit
        loss = F.cross_entropy(module.net(batch["image"]).concat, batch["label"])
        module.net.load_state_dict({**module.net.state_dict(), **recorder.states[-1]})
        own = F.cross_entropy(module.net(batch["image"]).concat, batch["label"])
    torch.testing.assert_close(trainer.callback_metrics["val/loss"], loss)
    assert not torch.isclose(own, loss)  # the training weights score otherwise


def test_checkpoints_hold_the_average_and_resume_restores_both(tmp_path: Path) -> None:
    module = tiny_module(step_mode="fused")
    ema, recorder = WeightEMA(0.5), Recorder()
    trainer = tiny_trainer(limit_train_batches=2, limit_val_batches=0, callbacks=[recorder, ema])
    data = RandomDataModule()
    saved: dict = {}

    class Save(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
            trainer.save_checkpoint(tmp_path / "last.ckpt")
            saved["average"] = {k: v.clone() for k, v in ema.ema.module.state_dict().items()}  # type: ignore[union-attr]

    trainer.callbacks.append(Save())
    trainer.fit(module, datamodule=data)
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    for name, value in saved["average"].items():
        assert torch.equal(checkpoint["state_dict"]["net." + name], value)
    training = checkpoint[EMA_CHECKPOINT_KEY]["training_state"]
    for name, value in recorder.states[-1].items():
        assert torch.equal(training[name], value)
    assert checkpoint[EMA_CHECKPOINT_KEY]["updates"] == 2
    # resumed: the network trains on from its own weights, the average from the average
    resumed, again = tiny_module(step_mode="fused"), WeightEMA(0.5)

    class Check(pl.Callback):
        def on_train_start(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
            for name, value in recorder.states[-1].items():
                assert torch.equal(pl_module.net.state_dict()[name], value)
            for name, value in saved["average"].items():
                assert torch.equal(again.ema.module.state_dict()[name].cpu(), value)  # type: ignore[union-attr]
            assert again.updates == 2

    tiny_trainer(
        max_epochs=2, limit_train_batches=2, limit_val_batches=0, callbacks=[again, Check()]
    ).fit(resumed, datamodule=data, ckpt_path=tmp_path / "last.ckpt", weights_only=True)
    assert again.ema is None  # handed over


@pytest.mark.parametrize(
    ("node", "match"),
    [
        ({"enabled": True, "decay": 1.0}, "ema.decay=1.0"),
        ({"enabled": True, "decay": 0}, "ema.decay=0"),
        ({"enabled": True, "phases": ["finetuning"]}, "ema.phases"),
        ({"enabled": True, "phases": []}, "ema.phases"),
    ],
)
def test_bad_ema_settings_are_refused(node: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ema_callback({"ema": node}, "finetune")


def test_ema_phases_choose_the_phases() -> None:
    finetune_only = {"ema": {"enabled": True, "decay": 0.99, "phases": ["finetune"]}}
    assert ema_callback(finetune_only, "pretrain") is None
    callback = ema_callback(finetune_only, "finetune")
    assert isinstance(callback, WeightEMA) and callback.decay == 0.99
    assert ema_callback({"ema": {"enabled": False}}, "finetune") is None
    assert ema_callback({}, "finetune") is None  # a run of an older fgssl
