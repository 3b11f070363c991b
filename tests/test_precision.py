"""Mixed precision on the CPU (bf16) and gradient clipping in both step modes."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fgssl import FGSSLModule
from fgssl.cli import eval as eval_cli
from fgssl.errors import ConfigError
from fgssl.evaluation.inference import predict_probabilities, run_precision
from helpers import RandomDataModule, tiny_module, tiny_net, tiny_trainer


@pytest.mark.parametrize("step_mode", ["progressive", "fused"])
@pytest.mark.parametrize("phase", ["pretrain", "finetune"])
def test_bf16_mixed_trains_both_phases(phase: str, step_mode: str) -> None:
    module = FGSSLModule(tiny_net(), phase=phase, step_mode=step_mode, schedule=[8, 4, 2], lr=0.01)
    before = copy.deepcopy(module.net.state_dict())
    trainer = tiny_trainer(limit_train_batches=2, limit_val_batches=1, precision="bf16-mixed")
    trainer.fit(module, datamodule=RandomDataModule(views=phase == "pretrain"))
    loss = trainer.callback_metrics[f"{phase}/loss_epoch"]
    assert torch.isfinite(loss)
    changed = [k for k, v in module.net.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.") for k in changed)
    assert all(p.dtype == torch.float32 for p in module.net.parameters())


class NormRecordingModule(FGSSLModule):
    """Records the gradient norm that each optimizer step sees after clipping."""

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        super().on_before_optimizer_step(optimizer)
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        self.norms = [*getattr(self, "norms", []), float(norm)]


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("step_mode", ["progressive", "fused"])
def test_gradient_clipping_bounds_every_step(step_mode: str, precision: str) -> None:
    norms = {}
    for clip in (None, 0.05):
        module = NormRecordingModule(
            tiny_net(), step_mode=step_mode, schedule=[8, 4, 2], lr=0.01, grad_clip=clip
        )
        trainer = tiny_trainer(limit_train_batches=2, limit_val_batches=0, precision=precision)
        trainer.fit(module, datamodule=RandomDataModule())
        norms[clip] = module.norms
    steps = 2 * (4 if step_mode == "progressive" else 1)
    assert len(norms[None]) == len(norms[0.05]) == steps
    assert max(norms[None]) > 0.05  # clipping had something to do
    assert max(norms[0.05]) <= 0.05 * 1.001


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true"])
def test_inference_in_the_runs_precision_gives_its_test_probabilities(precision: str) -> None:
    """fgssl-eval's inference (predict_probabilities) in a run's trainer.precision gives what
    Lightning's test in that precision gave (the module's test predictions), to float32
    rounding; float32 inference differs (so the check could fail)."""
    module = tiny_module()
    data = RandomDataModule()
    tiny_trainer(precision=precision).test(module, datamodule=data)
    tested, labels = module.test_predictions["combined"]
    ours = predict_probabilities(module.net, data.test_dataloader(), precision=precision)
    float32 = predict_probabilities(module.net, data.test_dataloader(), precision="32-true")
    assert torch.equal(ours["label"], torch.as_tensor(labels))
    np.testing.assert_allclose(ours["combined"].numpy(), tested, atol=1e-6)
    assert np.abs(float32["combined"].numpy() - tested).max() > 1e-4
    assert all(p.dtype == torch.float32 for p in module.net.parameters())  # cast back


def test_run_precision_spells_out_lightnings_aliases_and_refuses_others() -> None:
    assert [run_precision(v) for v in (None, 32, "16", "bf16", "64")] == [
        "32-true",
        "32-true",
        "16-mixed",
        "bf16-mixed",
        "64-true",
    ]
    with pytest.raises(ConfigError, match="precision 'transformer-engine': expected one of"):
        run_precision("transformer-engine")


def test_fgssl_eval_runs_in_the_runs_precision_and_records_it(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    assert json.loads((run / "results.json").read_text())["precision"] == "32-true"
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["trainer"]["precision"] = "bf16-mixed"  # as if the run had trained and tested so
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    argv = [str(run), "data.num_workers=0", "--device", "cpu", "--output"]
    assert eval_cli.main([*argv, str(tmp_path / "default")]) == 0
    assert "--precision" not in capsys.readouterr().err
    assert json.loads((tmp_path / "default" / "results.json").read_text())["precision"] == (
        "bf16-mixed"
    )
    assert eval_cli.main([*argv, str(tmp_path / "f32"), "--precision", "32"]) == 0
    err = capsys.readouterr().err
    assert "fgssl-eval: --precision 32-true, but the run was tested in bf16-mixed" in err
    assert json.loads((tmp_path / "f32" / "results.json").read_text())["precision"] == "32-true"
    assert eval_cli.main([str(run), "--precision", "fp8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fgssl-eval: error: --precision 'fp8': expected one of")
