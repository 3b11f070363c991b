"""(c) ``perf.compile=true`` with ``bf16-mixed``, reduced to one pretrain batch of the demo's
network (where an H200 gave a non-finite loss at the first batch of the concat stage):
the stage losses of that batch in eager mode, compiled by inductor (PyTorch's default
backend) and compiled with ``aot_eager`` (the same graph capture and autograd, without
inductor's generated kernels), from the same weights and inputs; then the compiled network's
forward pass of every stage against eager's (training mode, same weights) and the compiled
step's speed-up over eager in both phases. Whether the loss is finite tells whether the
fault is inductor's (PyTorch's) or in what both compiled variants share with eager."""

from __future__ import annotations

import copy
import importlib.metadata
import math
import sys
from typing import Any

import torch

from fgssl.errors import NonFiniteLossError
from gpu_benchmarks.harness import (
    Config,
    batch_loader,
    fixed_batch,
    make_net,
    measure_step,
    module_for,
    reset_device,
    trainer_for,
)
from gpu_benchmarks.settings import Settings

NAME = "compile"
DEMO = dict(lr=0.02, backbone_lr_scale=1.0, barlow_scale=1 / 128, warmup_epochs=15.0)
"""The demo experiment's optimisation (conf/experiment/demo.yaml). Its one warm-up epoch
is about 15 batches; here an epoch is one batch, so 15 "epochs" give the first batch the
demo's learning rate (lr / 15)."""


def demo_config(settings: Settings, **options: Any) -> Config:
    base: dict[str, Any] = dict(
        backbone=settings.compile_backbone,
        batch=settings.compile_batch,
        size=settings.compile_size,
        device=settings.device,
        schedule=(8, 4, 2),
        feat_dim=128 if not settings.smoke else 16,  # conf/model/fgssl_small.yaml
        hidden_dim=256 if not settings.smoke else 16,
        precision="bf16-mixed",
    )
    return Config(**{**base, **options})


def number(value: float) -> float | str:
    """JSON has no NaN or infinity: those are written as strings."""
    return value if math.isfinite(value) else str(value)


def first_batch(config: Config) -> dict[str, Any]:
    """The stage losses of the first pretrain batch (progressive step, 4 optimizer steps)."""
    torch._dynamo.reset()
    reset_device()
    module = module_for(config, "pretrain", "progressive", **DEMO)
    seen: list[list[float]] = []
    record = module._record_losses

    def recording(losses: list[torch.Tensor], batch_idx: int) -> None:
        seen.append([float(loss.float()) for loss in losses])
        record(losses, batch_idx)

    module._record_losses = recording  # type: ignore[method-assign]
    loader = batch_loader(fixed_batch(config))
    error = None
    try:
        trainer_for(config, 1, [], benchmark=config.device.startswith("cuda")).fit(
            module, train_dataloaders=loader
        )
    except NonFiniteLossError as caught:
        error = str(caught)
    losses = seen[0]
    return {
        "stage_losses": [number(v) for v in losses],
        "finite": [math.isfinite(v) for v in losses],
        "first_non_finite_stage": next(
            (k for k, v in enumerate(losses) if not math.isfinite(v)), None
        ),
        "error": error,
    }


def forward_agreement(config: Config, backend: str) -> list[dict[str, Any]]:
    """Each stage's embedding of one batch, compiled against eager (training mode, the same
    weights and batch statistics), under the config's autocast."""
    torch._dynamo.reset()
    eager = make_net(config).to(config.device).train()
    compiled_net = copy.deepcopy(eager)
    compiled = torch.compile(compiled_net.forward_stage, backend=backend)
    x = fixed_batch(config)["view"]
    dtype = torch.bfloat16 if config.precision == "bf16-mixed" else torch.float32
    device_type = "cuda" if config.device.startswith("cuda") else "cpu"
    rows = []
    with torch.autocast(device_type, dtype=dtype, enabled=dtype != torch.float32):
        for k in range(eager.num_stages):
            want = eager.forward_stage(x, k).embedding.float()
            got = compiled(x, k).embedding.float()
            rows.append(
                {
                    "stage": k,
                    "eager_finite": bool(torch.isfinite(want).all().detach()),
                    "compiled_finite": bool(torch.isfinite(got).all()),
                    "max_abs_difference": number(float((got - want).abs().max().detach())),
                    "eager_max_abs": number(float(want.abs().max().detach())),
                }
            )
    return rows


def speedups(settings: Settings) -> dict[str, Any]:
    """Compiled (inductor, or the smoke backend) against eager step time, both phases,
    bf16-mixed. The non-finite check is off here: these are timings only."""
    rows = {}
    for phase in ("pretrain", "finetune"):
        times = {}
        for name, compile_option in (
            ("eager", False),
            ("compiled", {"backend": settings.compile_backend}),
        ):
            torch._dynamo.reset()
            config = demo_config(settings, compile=compile_option)
            times[name] = measure_step(
                config,
                phase,
                "progressive",
                warmup=settings.warmup,
                repeats=settings.repeats,
                check_nonfinite=False,
            )
        rows[phase] = {
            "eager_ms": times["eager"]["seconds"] * 1e3,
            "compiled_ms": times["compiled"]["seconds"] * 1e3,
            "speedup": times["eager"]["seconds"] / times["compiled"]["seconds"],
        }
    return rows


def versions() -> dict[str, Any]:
    found: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    for package in ("triton", "pytorch-lightning", "timm"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def run(settings: Settings) -> dict[str, Any]:
    backend = settings.compile_backend
    variants = {
        "eager": demo_config(settings),
        f"compiled ({backend})": demo_config(settings, compile={"backend": backend}),
    }
    if backend != "aot_eager":
        variants["compiled (aot_eager)"] = demo_config(settings, compile={"backend": "aot_eager"})
    batches: dict[str, Any] = {}
    for name, config in variants.items():
        try:
            batches[name] = first_batch(config)
        except Exception as error:  # e.g. a compile error: recorded, the others still run
            batches[name] = {"error": f"{type(error).__name__}: {error}".splitlines()[0]}
        print(f"  {name}: {batches[name]}", file=sys.stderr, flush=True)
    forward = forward_agreement(demo_config(settings), backend)
    print(f"  forward, compiled vs eager: {forward}", file=sys.stderr, flush=True)
    return {
        "versions": versions(),
        "config": demo_config(settings).describe()
        | {"demo_optimisation": DEMO, "inputs": "random normal (seeded)"},
        "first_pretrain_batch": batches,
        "forward_compiled_vs_eager": forward,
        "speedup_bf16": speedups(settings),
    }
