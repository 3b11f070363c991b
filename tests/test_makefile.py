"""The set-up's PyTorch: PyPI's build by default (CUDA on Linux), the CPU-only build from
PyTorch's CPU wheel index with ``TORCH_INDEX``. The index is not reachable from the test
machine, so only the commands ``make -n`` would run are checked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def pip_commands(target: str, *variables: str) -> list[list[str]]:
    """The ``pip install`` lines ``make -n <target>`` prints (nothing is run)."""
    printed = subprocess.run(
        ["make", "-n", "-C", str(REPO), target, *variables],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split() for line in printed.splitlines() if " install " in line]


def torch_line(commands: list[list[str]]) -> list[str]:
    (line,) = [words for words in commands if any(w.startswith("torch==") for w in words)]
    return line


@pytest.mark.parametrize("target", ["install", "install-test", "install-docs", "demo"])
def test_torch_comes_from_pypi_unless_an_index_is_given(target: str) -> None:
    default = torch_line(pip_commands(target))
    assert "--index-url" not in default and "--extra-index-url" not in default
    commands = pip_commands(target, f"TORCH_INDEX={CPU_INDEX}")
    cpu = torch_line(commands)
    assert cpu[cpu.index("--index-url") + 1] == CPU_INDEX
    assert [w for w in cpu if "==" in w] == [w for w in default if "==" in w]  # same pins
    # fgssl and its other dependencies: PyPI, whatever the index of torch
    assert all("--index-url" not in words for words in commands if words is not cpu)
