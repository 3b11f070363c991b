"""Where an interrupted run stands: which phase to continue, from which checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fgssl.checkpointing import LAST_CHECKPOINT

__all__ = ["ResumePoint", "find_resume_point"]


@dataclass(frozen=True)
class ResumePoint:
    """Checkpoints to continue from: ``finetune`` set means the pretrain phase is over."""

    pretrain: str | None = None
    finetune: str | None = None


def find_resume_point(run_dir: str | Path) -> ResumePoint:
    """The ``last.ckpt`` of each phase found in ``run_dir`` (see fgssl.pipeline's layout).

    A finished pretrain phase is continued too: its fit ends at once, restoring the weights
    the finetune phase starts from.
    """
    run_dir = Path(run_dir)
    pretrain = run_dir / "pretrain" / LAST_CHECKPOINT
    finetune = run_dir / "finetune" / LAST_CHECKPOINT
    if finetune.is_file():
        return ResumePoint(finetune=str(finetune))
    return ResumePoint(pretrain=str(pretrain) if pretrain.is_file() else None)
