"""optim.implementation: the optimizer's foreach/fused arguments, the same training result
for each, and the refusals of what cannot run (before the first step)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.plugins.precision import MixedPrecision

from conftest import TINY_TRAINING
from fgssl.errors import ConfigError
from fgssl.module import FGSSLModule
from fgssl.optim import OPTIMIZER_IMPLEMENTATIONS, build_optimizer, start_fused_momentum
from fgssl.run.config_checks import check_config
from fgssl.run.factory import build_module
from fgssl.run.pipeline import run_training
from helpers import RandomDataModule, one_thread, tiny_module, tiny_trainer

Compose = Callable[..., DictConfig]

# What each implementation hands torch.optim.SGD (auto: its own defaults).
EXPECTED: dict[str, dict[str, bool | None]] = {
    "auto": {"foreach": None, "fused": None},
    "foreach": {"foreach": True, "fused": False},
    "fused": {"foreach": False, "fused": True},
    "for_loop": {"foreach": False, "fused": False},
}

_one_thread = pytest.fixture(autouse=True)(one_thread)


def train(implementation: str, batches: int = 2, **trainer: object) -> FGSSLModule:
    """A progressive finetune of ``batches`` batches (K+1 = 4 SGD steps each, momentum and
    weight decay on), seeded alike for every implementation."""
    pl.seed_everything(0, verbose=False)
    module = tiny_module(optimizer_implementation=implementation)
    options: dict[str, object] = {"limit_train_batches": batches, "limit_val_batches": 0}
    tiny_trainer(**{**options, **trainer}).fit(module, datamodule=RandomDataModule())
    return module


@pytest.fixture(scope="module")
def for_loop_weights() -> Iterator[dict[str, torch.Tensor]]:
    yield {k: v.clone() for k, v in train("for_loop").net.state_dict().items()}


@pytest.mark.parametrize("implementation", ["auto", "foreach", "fused", "for_loop"])
def test_each_implementation_reaches_sgd_and_trains_to_the_same_weights(
    implementation: str, for_loop_weights: dict[str, torch.Tensor]
) -> None:
    assert set(EXPECTED) == set(OPTIMIZER_IMPLEMENTATIONS)
    module = train(implementation)
    optimizer = module._optimizer().optimizer
    assert isinstance(optimizer, torch.optim.SGD)
    for key, value in EXPECTED[implementation].items():
        assert optimizer.defaults[key] == value, key
        assert all(group[key] == value for group in optimizer.param_groups), key
    untrained = tiny_module().net.state_dict()
    weights = module.net.state_dict()
    moved = [k for k, v in weights.items() if v.is_floating_point() and not v.equal(untrained[k])]
    assert len(moved) > 10  # the comparison below compares trained weights
    for name, value in weights.items():
        torch.testing.assert_close(value, for_loop_weights[name], msg=name)


def test_an_unknown_implementation_is_refused_by_the_module_and_the_config(
    compose_config: Compose, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"optim.implementation='fast': expected one of"):
        tiny_module(optimizer_implementation="fast")
    cfg = compose_config("+experiment=aptos", "data.root=/nonexistent", "optim.implementation=fast")
    with pytest.raises(ConfigError, match=r"optim.implementation='fast'"):
        run_training(cfg, tmp_path / "run")  # refused before data.root is read
    cfg = compose_config("+experiment=demo", *TINY_TRAINING, "optim.implementation=fused")
    data = SimpleNamespace(num_classes=5, ordinal=True, class_names=[str(c) for c in range(5)])
    module = build_module(cfg, data, phase="pretrain")  # type: ignore[arg-type]
    assert module.optimizer_implementation == "fused"
    assert compose_config("+experiment=demo").optim.implementation == "auto"


def test_fused_without_a_kernel_for_the_device_is_refused_before_the_first_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # as on a PyTorch or device without fused CPU kernels (torch.optim itself only fails at
    # the first step)
    import torch.utils._foreach_utils as foreach_utils

    monkeypatch.setattr(foreach_utils, "_get_fused_kernels_supported_devices", lambda: ["cuda"])
    module = tiny_module(optimizer_implementation="fused")
    trainer = tiny_trainer(limit_train_batches=1, limit_val_batches=0)
    with pytest.raises(ConfigError) as caught:
        trainer.fit(module, datamodule=RandomDataModule())
    assert str(caught.value).startswith("optim.implementation=fused: PyTorch")
    assert "torch.float32 parameters on cpu (only floating-point ones on cuda)" in str(caught.value)
    assert trainer.global_step == 0


def test_fused_with_clipping_under_a_gradient_scaler_is_refused(
    compose_config: Compose, tmp_path: Path
) -> None:
    """A fused optimizer unscales inside its step, so Lightning cannot clip before it (it
    raises a RuntimeError at the first clip): refused by the config check and the module."""
    overrides = ("optim.implementation=fused", "optim.grad_clip=1.0")
    cfg = compose_config(
        "+experiment=aptos", "data.root=/x", *overrides, "trainer.precision=16-mixed"
    )
    with pytest.raises(ConfigError, match=r"optim.implementation=fused with optim.grad_clip=1\.0"):
        run_training(cfg, tmp_path / "run")
    check_config(
        compose_config(
            "+experiment=aptos", "data.root=/x", *overrides, "trainer.precision=bf16-mixed"
        )
    )
    check_config(
        compose_config(
            "+experiment=aptos", "data.root=/x", overrides[0], "trainer.precision=16-mixed"
        )
    )

    module = tiny_module(optimizer_implementation="fused", grad_clip=1.0)
    scaler = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
    trainer = tiny_trainer(limit_train_batches=1, limit_val_batches=0, plugins=[scaler])
    with pytest.raises(ConfigError, match="16-bit gradient scaler"):
        trainer.fit(module, datamodule=RandomDataModule())
    assert trainer.global_step == 0


def test_a_factory_without_foreach_or_fused_is_refused_unless_auto() -> None:
    def plain_sgd(params: object) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=0.1)  # type: ignore[arg-type]

    params = [{"params": [torch.nn.Parameter(torch.zeros(2))]}]
    assert isinstance(build_optimizer(plain_sgd, params, "auto"), torch.optim.SGD)
    with pytest.raises(ConfigError, match=r"\(plain_sgd\) takes no foreach/fused arguments"):
        build_optimizer(plain_sgd, params, "foreach")
    partial = functools.partial(torch.optim.Adam, lr=0.1)
    assert build_optimizer(partial, params, "for_loop").defaults["foreach"] is False


def test_a_resumed_optimizer_takes_the_configured_implementation(tmp_path: Path) -> None:
    """torch.optim restores every group setting from the checkpoint, foreach/fused included;
    the module makes them its own before the state is loaded."""
    checkpoint = tmp_path / "last.ckpt"
    trainer = tiny_trainer(limit_train_batches=1, limit_val_batches=0)
    trainer.fit(tiny_module(optimizer_implementation="for_loop"), datamodule=RandomDataModule())
    trainer.save_checkpoint(checkpoint)
    saved = torch.load(checkpoint, weights_only=True)["optimizer_states"][0]["param_groups"]
    assert all(group["foreach"] is False for group in saved)

    resumed = tiny_module(optimizer_implementation="foreach")
    trainer = tiny_trainer(limit_train_batches=1, limit_val_batches=0, max_epochs=2)
    trainer.fit(resumed, datamodule=RandomDataModule(), ckpt_path=checkpoint)
    assert trainer.global_step == 2 * 4  # the saved batch and one more
    groups = resumed._optimizer().optimizer.param_groups
    assert all(group["foreach"] is True and group["fused"] is False for group in groups)
    assert resumed._optimizer().optimizer.state  # the momentum buffers were restored


def test_fused_sgd_momentum_starts_at_zero_and_dampening_is_refused() -> None:
    """PyTorch's fused SGD raises a TypeError when a group's parameters start their momentum
    at different steps (as the progressive stages do); zero buffers give SGD's first step."""
    first, later = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    fused = torch.optim.SGD([first, later], lr=0.1, momentum=0.9, fused=True)
    first.grad = torch.ones(3)
    fused.step()  # only `first` has a gradient: only its buffer starts
    later.grad = torch.ones(2)
    with pytest.raises(TypeError):  # torch's limitation, which start_fused_momentum avoids
        fused.step()

    pair = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))]
    reference = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))]
    fused = torch.optim.SGD(pair, lr=0.1, momentum=0.9, fused=True)
    loop = torch.optim.SGD(reference, lr=0.1, momentum=0.9, foreach=False)
    start_fused_momentum(fused)
    assert all(fused.state[p]["momentum_buffer"].eq(0).all() for p in pair)
    for step in range(3):  # the second parameter gets its first gradient at step 1
        for params, optimizer in ((pair, fused), (reference, loop)):
            params[0].grad = torch.full((3,), 1.0 + step)
            params[1].grad = torch.full((2,), 2.0) if step else None
            optimizer.step()
    for got, want in zip(pair, reference, strict=True):
        torch.testing.assert_close(got, want)
    start_fused_momentum(loop)  # not fused: nothing to start
    assert reference[1] in loop.state and len(loop.state) == 2

    damped = torch.optim.SGD(pair, lr=0.1, momentum=0.9, dampening=0.5, fused=True)
    with pytest.raises(ConfigError, match=r"dampening=0\.5"):
        start_fused_momentum(damped)
