"""Small in-memory data and networks for tests of the training loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fgssl import FGSSLModule, FGSSLNet


class RandomImages(Dataset[dict[str, torch.Tensor]]):
    """Random images whose label is readable from the mean of the red channel."""

    def __init__(self, count: int, size: int = 32, num_classes: int = 3, views: bool = False):
        generator = torch.Generator().manual_seed(count)
        self.images = torch.randn(count, 3, size, size, generator=generator)
        self.labels = torch.arange(count) % num_classes
        self.images[:, 0] += self.labels[:, None, None].float()
        self.views = views

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {"image": self.images[index], "label": self.labels[index]}
        if self.views:
            item["view"] = self.images[index].flip(-1)
        return item


class RandomDataModule(pl.LightningDataModule):
    def __init__(self, count: int = 32, batch_size: int = 8, views: bool = False):
        super().__init__()
        self.count, self.batch_size, self.views = count, batch_size, views

    def train_dataloader(self) -> DataLoader:
        data = RandomImages(self.count, views=self.views)
        return DataLoader(data, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(RandomImages(self.count // 2), batch_size=self.batch_size)

    test_dataloader = val_dataloader


def tiny_net(num_granularities: int = 3) -> FGSSLNet:
    torch.manual_seed(0)
    return FGSSLNet(
        "resnet18", num_classes=3, num_granularities=num_granularities, feat_dim=16, hidden_dim=16
    )


def without_batch_norm(net: nn.Module) -> nn.Module:
    """``net`` with every batch-norm layer replaced by the identity: no batch statistics, so
    a large batch and its micro-batches (or its shards under DDP) give the same per-image
    losses."""
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, name, nn.Identity())
    return net


def tiny_trainer(**kwargs: object) -> pl.Trainer:
    options: dict[str, object] = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    options.update(kwargs)
    return pl.Trainer(**options)  # type: ignore[arg-type]


def tiny_module(**kwargs: object) -> FGSSLModule:
    options: dict[str, object] = dict(schedule=[8, 4, 2], lr=0.01)
    options.update(kwargs)
    net = options.pop("net", None) or tiny_net()
    return FGSSLModule(net, **options)  # type: ignore[arg-type]


def one_thread() -> Iterator[None]:
    """Run a test with one intra-op thread: on a CPU shared with other processes, two
    OpenMP threads can be many times slower than one (use as an autouse fixture)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
