"""What a run of scripts/gpu_benchmark.py measures: the full sizes for a GPU, tiny ones for
a --smoke run on the CPU (which only checks that every section runs and writes its JSON)."""

from __future__ import annotations

import dataclasses

from gpu_benchmarks.harness import Config


@dataclasses.dataclass(frozen=True)
class Settings:
    device: str
    smoke: bool
    backbone: str = "resnet50"
    size: int = 224
    schedule: tuple[int, ...] = (16, 8, 4)
    feat_dim: int = 512
    hidden_dim: int = 1024
    small_batch: int = 16
    batch_candidates: tuple[int, ...] = (32, 64, 128, 256)
    """Tried in order for the largest batch that fits (the progressive pretrain step in
    float32, the most memory of all steps); the first that does not fit ends the search."""
    implementations: tuple[str, ...] = ("for_loop", "foreach", "fused")
    table_batch: int = 64
    table_compiled: bool = False
    """Also a torch.compile column in the precision table (compiling ResNet-50's K+1 stage
    passes takes minutes: off by default, to stay within the 8-minute budget)."""
    warmup: int = 2
    repeats: int = 5
    large_warmup: int = 1
    large_repeats: int = 3
    pipeline_images: int = 1024  # 28 batches of 32 per training epoch (APTOS 2019: 3662 images)
    pipeline_source_size: tuple[int, int] = (2000, 1500)  # APTOS-size PNGs (width, height)
    pipeline_batch: int = 32
    pipeline_workers: int = 16
    pipeline_epochs: int = 3
    pipeline_precision: str = "16-mixed"  # trainer=gpu's
    compile_backbone: str = "resnet18"  # the demo's network, where the fault was seen
    compile_size: int = 96
    compile_batch: int = 32
    compile_backend: str = "inductor"
    sync_backbone: str = "resnet18"
    sync_batch: int = 8
    sync_size: int = 64

    def config(self, batch: int, **options: object) -> Config:
        base = dict(
            backbone=self.backbone,
            batch=batch,
            size=self.size,
            device=self.device,
            schedule=self.schedule,
            feat_dim=self.feat_dim,
            hidden_dim=self.hidden_dim,
        )
        return Config(**{**base, **options})  # type: ignore[arg-type]


def settings_for(device: str, *, smoke: bool, table_compiled: bool = False) -> Settings:
    if not smoke:
        return Settings(device=device, smoke=False, table_compiled=table_compiled)
    return Settings(
        device=device,
        smoke=True,
        backbone="test_resnet",  # timm's smallest ResNet
        size=32,
        schedule=(8, 4, 2),
        feat_dim=16,
        hidden_dim=16,
        small_batch=4,
        batch_candidates=(8,),
        table_batch=4,
        table_compiled=table_compiled,
        warmup=1,
        repeats=1,
        large_warmup=1,
        large_repeats=1,
        pipeline_images=12,
        pipeline_source_size=(64, 48),
        pipeline_batch=2,
        pipeline_workers=2,
        pipeline_epochs=2,
        pipeline_precision="32-true",
        compile_backbone="test_resnet",
        compile_size=32,
        compile_batch=4,
        compile_backend="aot_eager",  # inductor's C++ code generation takes minutes on a CPU
        sync_backbone="test_resnet",
        sync_batch=4,
        sync_size=32,
    )
