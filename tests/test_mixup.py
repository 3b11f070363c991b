"""Mixup / CutMix of the finetune phase (fgssl.ops.mixup, ``mixup.*``): the mixed images and
soft targets against the formulas by hand and timm's own targets, reproducible draws, the
stage loss on soft targets, and validation on unmixed labels."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from timm.data.mixup import mixup_target

from fgssl.errors import ConfigError
from fgssl.ops.mixup import build_mixup, mix_batch
from helpers import RandomDataModule, one_thread, tiny_module, tiny_trainer

single_thread = pytest.fixture(autouse=True)(one_thread)

B, C = 6, 4


def constant_images() -> torch.Tensor:
    """Image i is the constant i + 1 (so a mixed pixel tells its mixing weight)."""
    return (torch.arange(B, dtype=torch.float32) + 1)[:, None, None, None].expand(B, 3, 8, 8)


def smoothed(labels: torch.Tensor, epsilon: float) -> torch.Tensor:
    """One-hot labels with label smoothing, by hand: 1 - eps + eps/C on, eps/C off."""
    target = torch.full((len(labels), C), epsilon / C)
    target[torch.arange(len(labels)), labels] = 1 - epsilon + epsilon / C
    return target


def test_mixup_mixes_each_image_with_the_reversed_batch_and_its_targets_alike() -> None:
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    mixup = build_mixup(
        {"mixup_alpha": 0.4, "cutmix_alpha": 0.0}, num_classes=C, label_smoothing=0.1
    )
    images = constant_images()
    mixed, targets = mix_batch(mixup, images, labels, seed=7)
    # image 0 = lam * 1 + (1 - lam) * 6, so lam = (6 - x) / 5
    lam = float((6 - mixed[0, 0, 0, 0]) / 5)
    assert 0 < lam < 1
    expected_images = lam * images + (1 - lam) * images.flip(0)
    torch.testing.assert_close(mixed, expected_images)
    by_hand = lam * smoothed(labels, 0.1) + (1 - lam) * smoothed(labels.flip(0), 0.1)
    torch.testing.assert_close(targets, by_hand)
    torch.testing.assert_close(targets, mixup_target(labels, C, lam, 0.1))  # timm's own
    assert torch.equal(images, constant_images())  # the input is left as it was
    assert targets.dtype == torch.float32 and torch.allclose(targets.sum(1), torch.ones(B))


def test_cutmix_targets_weigh_each_image_by_its_share_of_own_pixels() -> None:
    labels = torch.tensor([0, 1, 2, 3, 2, 1])
    mixup = build_mixup({"mixup_alpha": 0.0, "cutmix_alpha": 1.0}, num_classes=C)
    images = constant_images()
    for seed in range(5):
        mixed, targets = mix_batch(mixup, images, labels, seed=seed)
        own = (mixed[0, 0] == 1).float().mean().item()  # image 0's own pixels (value 1)
        assert ((mixed[0, 0] == 1) | (mixed[0, 0] == B)).all()  # the rest is image B-1's
        expected = own * F.one_hot(labels, C) + (1 - own) * F.one_hot(labels.flip(0), C)
        torch.testing.assert_close(targets, expected.float())


def test_the_draws_depend_on_the_seed_alone_and_leave_numpy_as_it_was() -> None:
    mixup = build_mixup({}, num_classes=C)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    np.random.seed(123)
    state = np.random.get_state()
    first = mix_batch(mixup, constant_images(), labels, seed=5)
    np.random.rand(10)  # the global state moves on between the two calls
    second = mix_batch(mixup, constant_images(), labels, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    other = mix_batch(mixup, constant_images(), labels, seed=6)
    assert not torch.equal(first[1], other[1])
    np.random.set_state(state)
    before = np.random.rand()
    np.random.set_state(state)
    mix_batch(mixup, constant_images(), labels, seed=9)
    assert np.random.rand() == before


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"mixup_alpha": 0.0, "cutmix_alpha": 0.0}, "mix nothing"),
        ({"mixup_alpha": -1.0}, "expected >= 0"),
        ({"prob": 1.5}, "mixup.prob=1.5"),
        ({"mode": "pairs"}, "mixup.mode='pairs'"),
        ({"alpha": 1.0}, "unknown option"),
    ],
)
def test_bad_mixup_options_are_refused(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_mixup(options, num_classes=C)


def test_the_finetune_stage_loss_is_cross_entropy_on_the_mixed_batch() -> None:
    options = {"mixup_alpha": 0.4, "cutmix_alpha": 0.0}
    module = tiny_module(mixup=options, label_smoothing=0.1)
    batch = next(iter(RandomDataModule(batch_size=8).train_dataloader()))
    normaliser, stage_loss = module._finetune_loss(batch, batch_idx=3)
    assert normaliser == 8
    concat = module.stages[-1]
    with torch.no_grad():
        got = stage_loss(concat)
        seed = module._batch_seed(3, stream=1, bits=32)
        mixed, targets = mix_batch(module.mixup, batch["image"], batch["label"], seed=seed)  # type: ignore[arg-type]
        logits = module.net.forward_stage(mixed, concat.index).logits
        by_hand = -(targets * logits.log_softmax(dim=1)).sum(dim=1).mean()
    torch.testing.assert_close(got, by_hand)
    # the pretrain phase does not mix
    assert tiny_module(phase="pretrain", mixup=options).mixup is None


def test_validation_metrics_use_the_unmixed_labels() -> None:
    mixed = tiny_module(mixup={"mixup_alpha": 0.4})
    plain = tiny_module()
    plain.net.load_state_dict(mixed.net.state_dict())
    data = RandomDataModule()
    scores = [
        tiny_trainer(limit_val_batches=2).validate(m, datamodule=data, verbose=False)[0]
        for m in (copy.deepcopy(mixed), plain)
    ]
    assert scores[0] == scores[1]
    assert "val/combined/acc" in scores[0]
