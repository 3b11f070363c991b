"""Batch-norm running statistics of whole images (fgssl.models.running_stats): the puzzle
passes leave them as they are, the whole-image passes update them, training is unchanged."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from fgssl.errors import ConfigError
from fgssl.models.running_stats import frozen_running_stats
from fgssl.stages import plan_stages
from fgssl.steps import fused_step, progressive_step
from helpers import RandomDataModule, RandomImages, tiny_module, tiny_trainer


def bn_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: buffer.clone()
        for name, buffer in net.named_buffers()
        if name.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }


@pytest.mark.parametrize("momentum", [0.1, None])
def test_frozen_layers_normalise_with_the_batch_and_keep_their_statistics(
    momentum: float | None,
) -> None:
    torch.manual_seed(0)
    layer = nn.BatchNorm2d(3, momentum=momentum)
    layer.running_mean += 0.5  # not the defaults, so that "unchanged" means something
    x = torch.randn(4, 3, 5, 5) * 2 + 1
    before = bn_state(layer)
    with frozen_running_stats(layer):
        inside = layer(x)
    assert all(torch.equal(before[k], v) for k, v in bn_state(layer).items())
    assert layer.momentum == momentum
    # the batch's statistics, by hand (biased variance, as batch norm normalises)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(inside, (x - mean) / torch.sqrt(var + layer.eps))
    layer(x)  # outside the block the running statistics move again
    assert not torch.equal(before["running_mean"], layer.running_mean)
    assert int(layer.num_batches_tracked) == 1


def test_layers_in_eval_mode_and_other_norms_are_left_alone() -> None:
    net = nn.Sequential(nn.BatchNorm2d(3), nn.GroupNorm(1, 3), nn.BatchNorm2d(3))
    net[2].eval()
    with frozen_running_stats(net):
        assert net[0].momentum == 0.0 and net[2].momentum == 0.1
    assert net[0].momentum == 0.1


def test_the_steps_run_each_stage_backward_inside_its_context() -> None:
    """Activation checkpointing recomputes the forward pass during backward: the context
    must still hold then."""
    stages = plan_stages(["stage1", "stage2", "concat"], [4, 2])
    weight = nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    inside: list[str] = []
    backward_in: list[str] = []

    class Context:
        def __init__(self, name: str) -> None:
            self.name = name

        def __enter__(self) -> None:
            inside.append(self.name)

        def __exit__(self, *_: object) -> None:
            inside.remove(self.name)

    def backward(loss: torch.Tensor) -> None:
        backward_in.append(inside[-1])
        loss.backward()

    for step in (progressive_step, fused_step):
        backward_in.clear()
        step(
            stages,
            lambda s: (weight * (s.index + 1)).sum(),
            optimizer,
            backward,
            stage_context=lambda s: Context(s.name),
        )
        assert backward_in == ["stage1", "stage2", "concat"]


def one_batch(views: bool) -> tuple[RandomDataModule, dict[str, torch.Tensor]]:
    """A data module of exactly one batch (8 images) and that batch (in some order: batch
    statistics do not depend on it)."""
    data = RandomImages(8, views=views)
    batch = {"image": data.images, "view": data.images.flip(-1)}
    return RandomDataModule(count=8, batch_size=8, views=views), batch


@pytest.mark.parametrize("phase", ["finetune", "pretrain"])
def test_a_fused_step_leaves_the_statistics_of_the_whole_image_passes(phase: str) -> None:
    """In a fused step the weights do not change between passes, so the running statistics
    after it are those of the whole-image passes alone, run on a copy of the network: the
    concat stage on the images; in the pretrain phase first every head and projector on the
    second view."""
    datamodule, batch = one_batch(views=phase == "pretrain")
    results = {}
    for policy in ("whole_images", "every_pass"):
        module = tiny_module(phase=phase, step_mode="fused", bn_running_stats=policy)
        expected = copy.deepcopy(module.net).train()
        with torch.no_grad():
            if phase == "finetune":
                expected.forward_stage(batch["image"], expected.num_stages - 1)
            else:  # every head and projector on the view, then the concat stage's image
                embeddings = expected(batch["view"]).embeddings
                [expected.project(e, k) for k, e in enumerate(embeddings)]
                concat = expected.num_stages - 1
                expected.project(expected.forward_stage(batch["image"], concat).embedding, concat)
        tiny_trainer(limit_train_batches=1, limit_val_batches=0).fit(module, datamodule=datamodule)
        got, want = bn_state(module.net), bn_state(expected)
        results[policy] = all(
            torch.allclose(got[k].float(), want[k].float(), atol=1e-5) for k in want
        )
    assert results == {"whole_images": True, "every_pass": False}


def test_an_unknown_policy_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="bn_running_stats must be one of"):
        tiny_module(bn_running_stats="puzzles")
