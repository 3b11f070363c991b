"""The data module's phases (fgssl.data.phases) and its hand-offs: enter_phase switches what
the training split and its loader serve; reread checks the files again."""

from __future__ import annotations

from pathlib import Path

import pytest

from fgssl.data import APTOS2019DataModule
from fgssl.errors import ImageReadError

SMALL: dict[str, object] = dict(
    image_size=32, resize_size=36, batch_size=4, num_workers=0, verify_images="none"
)


def aptos(root: Path, **kwargs: object) -> APTOS2019DataModule:
    return APTOS2019DataModule(root, **{**SMALL, **kwargs})  # type: ignore[arg-type]


def test_enter_phase_switches_the_training_split_and_its_views(aptos_root: Path) -> None:
    dm = aptos(aptos_root, label_fraction=0.5, unlabelled_own=True)
    dm.setup()
    assert dm.splits is not None
    train, own = dm.splits["train"], dm.splits["predict"]
    labelled = int(train["labelled"].sum())
    assert dm.phase == "finetune" and 0 < labelled < len(train)
    assert len(dm.table("train")) == labelled
    assert "view" not in dm.dataset("train")[0]

    dm.enter_phase("pretrain")
    assert dm.phase == "pretrain"
    assert len(dm.table("train")) == len(train) + len(own)  # every image, labels or not
    assert "view" in dm.dataset("train")[0]  # two views for the SSL loss
    assert len(dm.train_dataloader().sampler) == len(train) + len(own)  # type: ignore[arg-type]
    assert len(dm.table("val")) == len(dm.splits["val"])  # the held-out splits never change

    dm.enter_phase("finetune")
    assert len(dm.table("train")) == labelled


def test_a_phase_is_entered_never_assigned(aptos_root: Path) -> None:
    dm = aptos(aptos_root)
    with pytest.raises(ValueError, match="phase must be 'pretrain' or 'finetune', got 'test'"):
        dm.enter_phase("test")
    assert dm.phase == "finetune"
    with pytest.raises(AttributeError):
        dm.phase = "pretrain"  # type: ignore[misc]
    with pytest.raises(ValueError, match="got 'linear'"):
        aptos(aptos_root, phase="linear")


def test_reread_checks_the_files_again(aptos_copy: Path) -> None:
    dm = aptos(aptos_copy)
    first = dm.reread()
    assert dm.verify_images == "none"
    broken = Path(first["train"]["path"].iloc[0])
    broken.write_bytes(b"not an image")  # read again, the decode check must see it
    calls: list[tuple[int, int]] = []
    with pytest.raises(ImageReadError, match=broken.name):
        dm.reread(verify_images="decode", workers=1, progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][1] >= len(first["train"])
    assert dm.verify_images == "decode" and dm.verify_progress is None
    dm.missing_images = "skip"
    kept = dm.reread(workers=1)
    assert str(broken) not in set(kept["train"]["path"])
    assert len(kept["train"]) == len(first["train"]) - 1
    assert dm.unreadable and str(broken) in dm.unreadable
