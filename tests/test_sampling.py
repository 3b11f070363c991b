"""Training data that depends only on (seed, epoch, index): the basis of exact resumption."""

from __future__ import annotations

from pathlib import Path

import torch

from fgssl.data import APTOS2019DataModule
from fgssl.data.sampling import EpochSampler, shared_epoch


def epoch_batches(dm: APTOS2019DataModule, epoch: int) -> list[dict[str, torch.Tensor]]:
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return list(loader)


def make(root: Path, workers: int) -> APTOS2019DataModule:
    dm = APTOS2019DataModule(
        root,
        image_size=32,
        resize_size=40,
        batch_size=8,
        num_workers=workers,
        seed=3,
        phase="pretrain",
        persistent_workers=False,
    )
    dm.setup()
    return dm


def test_order_and_augmentations_depend_only_on_seed_epoch_and_index(aptos_root: Path) -> None:
    single, workers = make(aptos_root, 0), make(aptos_root, 2)
    first = epoch_batches(single, 2)
    again = epoch_batches(workers, 2)  # other process layout, same epoch
    other = epoch_batches(single, 3)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a["index"], b["index"])
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["view"], b["view"])
    order = torch.cat([b["index"] for b in first])
    assert not torch.equal(order, torch.cat([b["index"] for b in other]))
    assert sorted(order.tolist()) == sorted(set(order.tolist()))  # a permutation, no repeats


def test_an_image_is_augmented_differently_in_each_epoch(aptos_root: Path) -> None:
    dm = make(aptos_root, 0)
    dataset = dm.dataset("train")
    dataset.epoch = shared_epoch(0)
    at_epoch = []
    for epoch in (0, 1, 2):
        dataset.epoch.fill_(epoch)
        at_epoch.append(dataset[5]["image"])
    dataset.epoch.fill_(1)
    assert torch.equal(dataset[5]["image"], at_epoch[1])
    assert not (torch.equal(at_epoch[0], at_epoch[1]) and torch.equal(at_epoch[1], at_epoch[2]))


def test_weighted_draws_follow_the_weights() -> None:
    sampler = EpochSampler(4, seed=0, epoch=shared_epoch(), weights=[0.0, 0.0, 1.0, 3.0])
    draws = torch.tensor(
        [i for epoch in range(200) for i in (sampler.set_epoch(epoch), *sampler)[1:]]
    )
    assert set(draws.tolist()) == {2, 3}
    assert 0.7 < float((draws == 3).float().mean()) < 0.8
