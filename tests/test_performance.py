"""Performance options leave the network's outputs (and gradients) unchanged."""

from __future__ import annotations

import pytest
import torch

from fgssl import FGSSLModule, FGSSLNet
from helpers import RandomDataModule, tiny_net, tiny_trainer


def make_net(**kwargs: object) -> FGSSLNet:
    torch.manual_seed(0)
    return FGSSLNet("resnet18", num_classes=3, feat_dim=16, hidden_dim=16, **kwargs)  # type: ignore[arg-type]


def test_channels_last_leaves_outputs_unchanged() -> None:
    x = torch.randn(4, 3, 64, 64)
    reference = make_net().eval()
    fast = make_net().eval().to(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = reference(x)
        got = fast(x.contiguous(memory_format=torch.channels_last))
        for k in range(reference.num_stages):
            torch.testing.assert_close(
                fast.forward_stage(x.contiguous(memory_format=torch.channels_last), k).logits,
                reference.forward_stage(x, k).logits,
                rtol=1e-4,
                atol=1e-4,
            )
    for a, b in zip(got.logits, expected.logits, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_activation_checkpointing_gives_the_same_outputs_and_gradients() -> None:
    x = torch.randn(4, 3, 64, 64)
    plain, checkpointed = make_net(), make_net(activation_checkpointing=True)
    for net in (plain, checkpointed):
        out = net.forward_stage(x, 1)
        out.logits.sum().backward()
    torch.testing.assert_close(
        checkpointed.forward_stage(x, 3).logits, plain.forward_stage(x, 3).logits
    )
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        if p.grad is not None:
            assert q.grad is not None, name
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5, msg=name)
    assert checkpointed.backbone.features.model.grad_checkpointing


@pytest.mark.parametrize("phase", ["pretrain", "finetune"])
def test_module_with_channels_last_computes_the_same_losses(phase: str) -> None:
    losses = {}
    for channels_last in (False, True):
        module = FGSSLModule(
            tiny_net(), phase=phase, schedule=[8, 4, 2], lr=0.0, channels_last=channels_last
        )
        trainer = tiny_trainer(limit_train_batches=1, limit_val_batches=0)
        trainer.fit(module, datamodule=RandomDataModule(views=phase == "pretrain"))
        losses[channels_last] = float(trainer.callback_metrics[f"{phase}/loss"])
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


@pytest.mark.slow
def test_compiled_passes_give_the_same_outputs() -> None:
    # inductor's code generation, on timm's smallest ResNet: compiling ResNet-18 takes minutes
    torch._dynamo.reset()
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(0)
    net = FGSSLNet("test_resnet", num_classes=3, feat_dim=16, hidden_dim=16).eval()
    compiled_stage = torch.compile(net.forward_stage)
    with torch.no_grad():
        for k in (0, 3):
            torch.testing.assert_close(
                compiled_stage(x, k).logits, net.forward_stage(x, k).logits, rtol=1e-4, atol=1e-4
            )


@pytest.mark.slow
def test_module_compile_option_trains() -> None:
    """Every pass of a training step goes through torch.compile. The backend is patched to
    aot_eager (TorchDynamo's graph capture and AOTAutograd's backward, without inductor's
    C++ code generation, which takes minutes for the K+1 passes and their backward)."""
    torch._dynamo.reset()
    module = FGSSLModule(tiny_net(), schedule=[8, 4, 2], lr=0.01, compile=True)
    compiled: list[dict[str, object]] = []
    real_compile = torch.compile

    def compile_to_aot_eager(fn: object, **options: object) -> object:
        compiled.append(options)
        return real_compile(fn, **{**options, "backend": "aot_eager"})  # type: ignore[call-overload]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "compile", compile_to_aot_eager)
        trainer = tiny_trainer(limit_train_batches=1, limit_val_batches=0)
        trainer.fit(module, datamodule=RandomDataModule())
    assert compiled == [{}, {}]  # the stage pass and the full pass, with no options
    assert set(module._passes) == {"stage", "full"}
    assert trainer.global_step == 4
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0
