"""Precise batch-norm statistics (fgssl.run.precise_bn): recomputed on whole training images
as plain averages of the batch statistics, before validation or at the end of an epoch."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from fgssl.data import APTOS2019DataModule
from fgssl.errors import ConfigError
from fgssl.run.precise_bn import PreciseBatchNorm


class OneNorm(nn.Module):
    """A batch-norm layer on the images' three channels."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


def datamodule(root: Path) -> APTOS2019DataModule:
    dm = APTOS2019DataModule(
        root, image_size=32, resize_size=36, eval_batch_size=8, num_workers=0,
        verify_images="none",
    )  # fmt: skip
    dm.setup()
    return dm


@pytest.mark.parametrize("num_images", [None, 20])
def test_statistics_are_the_average_of_the_batch_statistics(
    aptos_root: Path, num_images: int | None
) -> None:
    dm = datamodule(aptos_root)
    module = SimpleNamespace(net=OneNorm(), device=torch.device("cpu"))
    module.net.norm.running_mean.fill_(5.0)  # stale statistics, to be replaced
    module.net.eval()
    trainer = SimpleNamespace(datamodule=dm, global_rank=0)
    PreciseBatchNorm(num_images, seed=3).recompute(trainer, module)  # type: ignore[arg-type]

    # by hand: the same images in the same batches, each batch's mean and unbiased variance
    dataset = dm.dataset("train", pipeline="eval")
    indices = list(range(len(dataset)))
    if num_images is not None:
        indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(3))
        indices = indices[:num_images].tolist()
    images = torch.stack([dataset[i]["image"] for i in indices])
    batches = images.split(8)
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches])
    variances = torch.stack([b.transpose(0, 1).flatten(1).var(dim=1) for b in batches])
    torch.testing.assert_close(module.net.norm.running_mean, means.mean(0))
    torch.testing.assert_close(module.net.norm.running_var, variances.mean(0))
    assert not module.net.training  # left in the mode it was in
    assert module.net.norm.momentum == 0.1


def test_a_network_without_batch_norm_is_left_alone(aptos_root: Path) -> None:
    net = nn.Sequential(nn.Conv2d(3, 3, 1), nn.GroupNorm(1, 3))
    before = [p.clone() for p in net.parameters()]
    trainer = SimpleNamespace(datamodule=datamodule(aptos_root), global_rank=0)
    module = SimpleNamespace(net=net, device=torch.device("cpu"))
    PreciseBatchNorm(4).recompute(trainer, module)  # type: ignore[arg-type]
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_hooks_follow_the_phase() -> None:
    calls: list[str] = []

    class Recording(PreciseBatchNorm):
        def recompute(self, trainer: object, pl_module: object) -> None:  # type: ignore[override]
            calls.append("recompute")

    fit = SimpleNamespace(sanity_checking=False, training=True)
    Recording(8).on_validation_start(fit, None)  # type: ignore[arg-type]
    Recording(8).on_train_epoch_end(fit, None)  # type: ignore[arg-type]
    assert calls == ["recompute"]  # before validation only
    Recording(8).on_validation_start(SimpleNamespace(sanity_checking=True, training=True), None)  # type: ignore[arg-type]
    Recording(8).on_validation_start(SimpleNamespace(sanity_checking=False, training=False), None)  # type: ignore[arg-type]
    assert calls == ["recompute"]  # not in the sanity check, not in trainer.validate/test
    Recording(8, every_epoch_end=True).on_train_epoch_end(fit, None)  # type: ignore[arg-type]
    Recording(8, every_epoch_end=True).on_validation_start(fit, None)  # type: ignore[arg-type]
    assert calls == ["recompute", "recompute"]
    # at the start of a fresh pretrain phase (the monitor's random-weight reference), not of
    # a resumed one, nor of a phase with validation
    Recording(8, every_epoch_end=True).on_train_start(SimpleNamespace(global_step=0), None)  # type: ignore[arg-type]
    Recording(8, every_epoch_end=True).on_train_start(SimpleNamespace(global_step=7), None)  # type: ignore[arg-type]
    Recording(8).on_train_start(SimpleNamespace(global_step=0), None)  # type: ignore[arg-type]
    assert calls == ["recompute"] * 3


@pytest.mark.parametrize("bad", [0, -3, True])
def test_a_bad_number_of_images_is_refused_in_one_line(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"precise_bn\.num_images must be"):
        PreciseBatchNorm(bad)  # type: ignore[arg-type]
