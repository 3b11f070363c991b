"""A training step reads nothing back from the device (a GPU sync) except where it must.

Every read of a device tensor on the host (``.item()``, ``float()``, ``bool()``, ``.tolist()``,
``nonzero``, ...) and every tensor made from Python data (on a GPU, a blocking copy from the
host) waits for all queued GPU work and stalls the many small steps of the progressive mode.
On the CPU there is no device, so the test counts the operations that would be syncs on a GPU:
the ATen operations that read a value back or build a tensor from host data (seen with a
TorchDispatchMode, whoever calls them: fgssl, Lightning or torch.optim) and the Python methods
that read a whole tensor (patched). The jigsaw permutations are drawn on the host by design
(a CPU generator, the same puzzles on any device), so their draw is not counted; their copy
to a GPU is asynchronous (``scripts/gpu_benchmark.py`` counts real syncs on a GPU).

The bounds, per batch: none at all at a batch that is not a check; at a check batch (every
``log_every_n_steps``) one ``tolist``, the non-finite check's; with a progress bar, one to
three scalar reads more at every batch (Lightning reads the bar's loss; a GPU user can turn
the bar off).
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from helpers import RandomDataModule, one_thread, tiny_module, tiny_trainer

_one_thread = pytest.fixture(autouse=True)(one_thread)
# the module, not the function fgssl.ops re-exports under the same name
jigsaw_module = importlib.import_module("fgssl.ops.jigsaw")

SYNC_OPS = {
    "aten._local_scalar_dense.default": "scalar read (.item(), float(), bool(), int())",
    "aten.is_nonzero.default": "bool() of a tensor",
    "aten.nonzero.default": "nonzero (boolean-mask indexing)",
    "aten.masked_select.default": "masked_select",
    "aten.equal.default": "torch.equal",
    "aten.lift_fresh.default": "a tensor made from Python data",
    "aten.lift_fresh_copy.default": "a tensor made from Python data",
}
MASK_INDEXING = {"aten.index.Tensor", "aten.index_put.default", "aten.index_put_.default"}
"""Indexing with a boolean mask (its size is read back, as with nonzero)."""
HOST_METHODS = ("tolist", "numpy", "cpu")


class SyncCounter(TorchDispatchMode):
    """Counts the operations of :data:`SYNC_OPS` while ``active`` and not ``paused``."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.paused = 0

    def count(self, name: str) -> None:
        if not self.paused:
            self.counts[name] += 1

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        name = str(func)
        if name in SYNC_OPS or name.startswith("aten._unique"):
            self.count(name)
        elif name in MASK_INDEXING and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1]
        ):
            self.count(f"{name} with a boolean mask")
        return func(*args, **(kwargs or {}))


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncCounter]:
    mode = SyncCounter()
    for name in HOST_METHODS:
        original = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *a: Any, _name: str = name, _f: Any = original) -> Any:
            mode.count(f"Tensor.{_name}")
            return _f(self, *a)

        monkeypatch.setattr(torch.Tensor, name, counted)
    draw = jigsaw_module.random_permutations

    def host_draw(*args: Any, **kwargs: Any) -> torch.Tensor:
        mode.paused += 1
        try:
            return draw(*args, **kwargs)
        finally:
            mode.paused -= 1

    monkeypatch.setattr(jigsaw_module, "random_permutations", host_draw)
    yield mode


class PerBatch(pl.Callback):
    """The counts of each whole batch: from its start to the next batch's start (the step,
    the hooks, Lightning's logging and the next batch's loading)."""

    def __init__(self, mode: SyncCounter) -> None:
        self.mode = mode
        self.batches: list[Counter[str]] = []
        self.active = False

    def on_train_batch_start(self, *_: Any) -> None:
        if self.active:
            self.batches.append(self.mode.counts.copy())
            self.mode.__exit__(None, None, None)
        self.mode.counts.clear()
        self.mode.__enter__()
        self.active = True

    def on_train_epoch_end(self, *_: Any) -> None:
        if self.active:
            self.mode.__exit__(None, None, None)
            self.active = False


def train(mode: SyncCounter, phase: str, step_mode: str, **trainer: Any) -> list[Counter[str]]:
    """Host reads of batches 1-3 of 5 (a check every 2 batches). Batch 0 is left out: at
    the first batch of an epoch Lightning makes each logged value's accumulator from Python
    numbers (20 small copies to the device, once)."""
    module = tiny_module(phase=phase, step_mode=step_mode, grad_clip=1.0)
    per_batch = PerBatch(mode)
    options = dict(limit_train_batches=5, limit_val_batches=0, log_every_n_steps=2)
    fit = tiny_trainer(**{**options, **trainer}, callbacks=[per_batch])
    fit.fit(module, datamodule=RandomDataModule(count=40, views=phase == "pretrain"))
    assert fit.global_step == 5 * (4 if step_mode == "progressive" else 1)
    return per_batch.batches[1:]


CHECK_BATCH = Counter({"Tensor.tolist": 1})  # NonFiniteWatch.first_failure


@pytest.mark.parametrize(
    ("phase", "step_mode"),
    [
        ("finetune", "progressive"),
        ("finetune", "fused"),
        ("pretrain", "progressive"),
        ("pretrain", "fused"),
    ],
)
def test_a_training_step_reads_nothing_back_between_checks(
    counter: SyncCounter, phase: str, step_mode: str
) -> None:
    batches = train(counter, phase, step_mode)
    # batch_idx 1 and 3 are checks ((batch_idx + 1) % log_every_n_steps == 0)
    assert batches == [CHECK_BATCH, Counter(), CHECK_BATCH]


def test_a_progress_bar_costs_a_few_reads_per_batch(counter: SyncCounter) -> None:
    """Lightning converts the bar's loss to a number each time its bar metrics are asked
    for: at the end of every batch, when the bar refreshes, and at a logging step."""
    batches = train(counter, "finetune", "progressive", enable_progress_bar=True)
    scalar = "aten._local_scalar_dense.default"
    assert all(1 <= batch[scalar] <= 3 for batch in batches), batches
    without_bar = [{k: v for k, v in batch.items() if k != scalar} for batch in batches]
    assert without_bar == [CHECK_BATCH, {}, CHECK_BATCH]


def test_the_counter_sees_the_reads_it_must_bound(counter: SyncCounter) -> None:
    """The kinds of host read the counter is there to catch, one each."""
    x = torch.ones(3)
    checks: list[Callable[[], object]] = [
        lambda: x.sum().item(),
        lambda: float(x.sum()),
        lambda: bool(x.all()),
        lambda: x.new_tensor([1.0, 2.0]),
        lambda: x.tolist(),
        lambda: x[x > 0],
    ]
    with counter:
        for check in checks:
            check()
    assert counter.counts == {
        "aten._local_scalar_dense.default": 3,
        "aten.lift_fresh.default": 1,
        "Tensor.tolist": 1,
        "aten.index.Tensor with a boolean mask": 1,
    }
