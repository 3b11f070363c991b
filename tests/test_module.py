"""FGSSLModule: steps per batch, phases, step modes, errors."""

from __future__ import annotations

import copy

import pytest
import torch

from fgssl import BaselineNet, FGSSLModule
from fgssl.errors import ConfigError, NonFiniteLossError
from helpers import RandomDataModule, tiny_module, tiny_net, tiny_trainer


@pytest.mark.parametrize("phase", ["pretrain", "finetune"])
def test_progressive_mode_steps_once_per_stage(phase: str) -> None:
    module = tiny_module(phase=phase, step_mode="progressive")
    trainer = tiny_trainer(limit_train_batches=3, limit_val_batches=0)
    trainer.fit(module, datamodule=RandomDataModule(views=phase == "pretrain"))
    assert trainer.global_step == 3 * 4  # batches x (K + 1)


@pytest.mark.parametrize("phase", ["pretrain", "finetune"])
def test_fused_mode_steps_once_per_batch(phase: str) -> None:
    module = tiny_module(phase=phase, step_mode="fused")
    trainer = tiny_trainer(limit_train_batches=3, limit_val_batches=0)
    trainer.fit(module, datamodule=RandomDataModule(views=phase == "pretrain"))
    assert trainer.global_step == 3


@pytest.mark.parametrize("step_mode", ["progressive", "fused"])
def test_the_pretrain_phase_trains_with_vicreg(step_mode: str) -> None:
    objective = {"_target_": "fgssl.losses.VICRegLoss"}
    module = tiny_module(phase="pretrain", step_mode=step_mode, objective=objective)
    before = copy.deepcopy(module.net.state_dict())
    trainer = tiny_trainer(limit_train_batches=2, limit_val_batches=0)
    trainer.fit(module, datamodule=RandomDataModule(views=True))
    loss = trainer.callback_metrics["pretrain/loss_epoch"]
    assert torch.isfinite(loss) and loss > 0
    changed = [k for k, v in module.net.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.") for k in changed)


@pytest.mark.parametrize("step_mode", ["progressive", "fused"])
@pytest.mark.parametrize("phase", ["pretrain", "finetune"])
def test_one_batch_changes_every_part_of_the_network(phase: str, step_mode: str) -> None:
    module = tiny_module(phase=phase, step_mode=step_mode)
    before = copy.deepcopy(module.net.state_dict())
    tiny_trainer(limit_train_batches=1, limit_val_batches=0).fit(
        module, datamodule=RandomDataModule(views=phase == "pretrain")
    )
    after = module.net.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    parts = ["backbone.", "blocks.0.", "blocks.2.", "heads.0.", "heads.3."]
    if phase == "finetune":
        parts += ["classifiers.0.", "classifiers.3."]
    for part in parts:
        assert any(name.startswith(part) for name in changed), f"{part} did not change"


class LossRecordingModule(FGSSLModule):
    """Keeps the stage losses of every batch."""

    def _record_losses(self, losses: list[torch.Tensor], batch_idx: int) -> None:
        self.recorded = [*getattr(self, "recorded", []), torch.stack(losses)]
        super()._record_losses(losses, batch_idx)


def test_fused_and_progressive_compute_the_same_losses_before_any_step() -> None:
    """With a zero learning rate no step changes the weights, so the losses of every stage
    must agree between the modes (fused pretrain runs the second view only once)."""
    losses = {}
    for step_mode in ("progressive", "fused"):
        for phase in ("pretrain", "finetune"):
            module = LossRecordingModule(
                tiny_net(), phase=phase, step_mode=step_mode, schedule=[8, 4, 2], lr=0.0
            )
            tiny_trainer(limit_train_batches=1, limit_val_batches=0).fit(
                module, datamodule=RandomDataModule(views=phase == "pretrain")
            )
            (losses[step_mode, phase],) = module.recorded
    for phase in ("pretrain", "finetune"):
        assert losses["fused", phase].shape == (4,)
        torch.testing.assert_close(losses["fused", phase], losses["progressive", phase])


def test_validation_logs_combined_and_concat_metrics() -> None:
    module = tiny_module(ordinal=True)
    trainer = tiny_trainer(limit_train_batches=2)
    trainer.fit(module, datamodule=RandomDataModule())
    for head in ("combined", "concat"):
        for metric in ("acc", "balanced_acc", "f1", "kappa", "auroc"):
            value = float(trainer.callback_metrics[f"val/{head}/{metric}"])
            assert -1.0 <= value <= 1.0


def test_baseline_trains_with_one_stage() -> None:
    torch.manual_seed(0)
    module = FGSSLModule(BaselineNet("resnet18", num_classes=3), lr=0.01)
    trainer = tiny_trainer(limit_train_batches=2, limit_val_batches=1)
    trainer.fit(module, datamodule=RandomDataModule())
    assert trainer.global_step == 2
    assert "val/combined/acc" in trainer.callback_metrics


def test_net_from_a_hydra_config_is_saved_in_the_checkpoint(tmp_path) -> None:
    config = {
        "_target_": "fgssl.models.FGSSLNet",
        "backbone": "resnet18",
        "num_classes": 3,
        "feat_dim": 8,
        "hidden_dim": 8,
    }
    module = FGSSLModule(config, schedule=[8, 4, 2])
    trainer = tiny_trainer(limit_train_batches=1, limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=RandomDataModule())
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    restored = FGSSLModule.load_from_checkpoint(tmp_path / "model.ckpt")
    for name, value in module.net.state_dict().items():
        torch.testing.assert_close(restored.net.state_dict()[name], value)
    assert torch.load(tmp_path / "model.ckpt", weights_only=False)["fgssl"]["phase"] == "finetune"


@pytest.mark.parametrize("compile", [False, True])
def test_non_finite_loss_names_the_phase_and_stage(
    compile: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch, "compile", lambda function, **options: function)
    module = tiny_module(phase="finetune", lr=1e30, compile=compile)
    trainer = tiny_trainer(limit_train_batches=2, limit_val_batches=0)
    with pytest.raises(
        NonFiniteLossError, match=r"finetune phase, stage stage\d|finetune phase, stage concat"
    ) as raised:
        trainer.fit(module, datamodule=RandomDataModule())
    assert ("without perf.compile" in str(raised.value)) == compile


def test_pretrain_without_second_view_is_explained() -> None:
    trainer = tiny_trainer(limit_train_batches=1, limit_val_batches=0)
    with pytest.raises(KeyError, match="second view"):
        trainer.fit(tiny_module(phase="pretrain"), datamodule=RandomDataModule(views=False))


def test_schedule_must_match_the_network() -> None:
    with pytest.raises(ConfigError, match="one grid per granularity"):
        FGSSLModule(tiny_net(num_granularities=2), schedule=[8, 4, 2])


@pytest.mark.parametrize(("key", "value"), [("phase", "warmup"), ("step_mode", "lazy")])
def test_rejects_unknown_phase_and_step_mode(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=value):
        FGSSLModule(tiny_net(), **{key: value})  # type: ignore[arg-type]
