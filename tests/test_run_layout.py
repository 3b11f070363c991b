"""The run directory is defined once, in fgssl.rundir."""

from __future__ import annotations

import ast
from pathlib import Path

import fgssl
from fgssl.run.loading import RUN_CHECKPOINTS
from fgssl.rundir import RunDir

LAYOUT_NAMES = {
    "config.yaml",
    "split.csv",
    "results.json",
    "failed.json",
    "metrics.csv",
    "checkpoints",
    "best.ckpt",
    "last.ckpt",
}


def test_the_paths_of_a_run_directory(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert run.config == tmp_path / "config.yaml"
    assert run.split == tmp_path / "split.csv"
    assert run.results == tmp_path / "results.json"
    assert run.failed == tmp_path / "failed.json"
    assert run.eval_dir == tmp_path / "eval"
    assert run.metrics("pretrain") == tmp_path / "pretrain" / "metrics.csv"
    assert run.best_checkpoint == tmp_path / "finetune" / "checkpoints" / "best.ckpt"
    assert run.last_checkpoint("pretrain") == tmp_path / "pretrain" / "checkpoints" / "last.ckpt"
    assert RUN_CHECKPOINTS == {
        "pretrain": ("pretrain/checkpoints/last.ckpt",),
        "finetune": ("finetune/checkpoints/best.ckpt", "finetune/checkpoints/last.ckpt"),
    }


def test_no_other_module_spells_a_file_name_of_the_layout() -> None:
    """A string that is exactly one of the layout's names (e.g. ``run_dir / "split.csv"``)
    outside rundir.py is a second definition; messages and docstrings may name them."""
    package = Path(fgssl.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "rundir.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in LAYOUT_NAMES:
                found.append(f"{path.relative_to(package)}:{node.lineno} {node.value!r}")
    assert not found, f"use fgssl.rundir instead of: {found}"
