"""Training learns real dermoscopy: a tiny supervised run on a real HAM10000 subset, split by
lesion, must score a held-out balanced accuracy well above chance.

Synthetic images can hide faults a real image shows (a colour channel swapped or dropped,
normalisation applied twice, labels shuffled against images, a split that leaks or starves
a class): each makes this run fall to chance. The subset is three diagnoses HAM10000 tells
apart by colour and structure (nv, bcc, vasc; 90 images each, several images of a lesion
kept together), at 64 px, so it needs no pretrained weights and no GPU. The threshold is
set from measured runs (see THRESHOLD), not from the clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from realdata_layouts import realdata_root

DIAGNOSES = ("nv", "bcc", "vasc")
PER_CLASS = 90
THRESHOLD = 0.5
"""Chance is 1/3 (54 held-out images: a pipeline that learns nothing scores 0.33 +- 0.07).
Measured held-out balanced accuracy of this run on seeds 0-4 (this project's 2-core CPU,
busy, torch 2.14.1): 0.796, 0.685, 0.630, 0.852, 0.741 (mean 0.741); the threshold leaves
0.13 below the lowest."""
RUN = [
    "experiment=isic2018",
    "method=baseline",
    "model.net.backbone=resnet18",
    "model.net.pretrained=false",
    "data.image_size=64",
    "data.val_fraction=0.2",
    "data.test_fraction=0.2",
    "data.batch_size=32",
    "data.num_workers=0",
    "optim.lr=0.01",
    "optim.backbone_lr_scale=1.0",
    "optim.warmup_epochs=1",
    "loss.class_weights=balanced",
    "finetune_epochs=10",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "figures.enabled=false",
    "intervals.resamples=200",
]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    from helpers import one_thread

    yield from one_thread()


def ham10000_subset(root: Path) -> Path:
    """The HAM10000 download layout holding the first PER_CLASS images of each of DIAGNOSES
    (metadata order, so whole lesions mostly), linked to the shared copy."""
    ham = realdata_root() / "ham10000-200x150"
    if not (ham / "HAM10000_metadata.csv").is_file():
        pytest.skip(
            f"no HAM10000 images at {str(ham)!r} (shared/realdata is not part of the package)"
        )
    meta = pd.read_csv(ham / "HAM10000_metadata.csv", dtype=str)
    subset = pd.concat([meta[meta["dx"] == dx].head(PER_CLASS) for dx in DIAGNOSES])
    images = root / "HAM10000_images_part_1"
    images.mkdir(parents=True)
    parts = [ham / "HAM10000_images_part_1", ham / "HAM10000_images_part_2"]
    sources = {p.stem: p for part in parts for p in part.iterdir()}
    for image_id in subset["image_id"]:
        (images / f"{image_id}.jpg").symlink_to(sources[image_id])
    (root / "HAM10000_images_part_2").mkdir()
    subset.to_csv(root / "HAM10000_metadata.csv", index=False)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])
def test_a_tiny_run_learns_real_dermoscopy(tmp_path: Path, seed: int) -> None:
    from fgssl.run.pipeline import run_training

    root = ham10000_subset(tmp_path / "ham")
    run_dir = tmp_path / "run"
    GlobalHydra.instance().clear()
    with initialize_config_module("fgssl.conf", version_base="1.3"):
        overrides = [*RUN, f"data.root={root}", f"seed={seed}"]
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        run_training(cfg, run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    split = pd.read_csv(run_dir / "split.csv")
    names = results["class_names"]
    held_out = {names[label] for label in split.loc[split["split"] == "test", "label"]}
    assert held_out == {"NV", "BCC", "VASC"}  # every diagnosis is held out, by lesion
    accuracy = results["test"]["combined"]["balanced_acc"]
    assert accuracy > THRESHOLD, f"held-out balanced accuracy {accuracy:.3f} (seed {seed})"
