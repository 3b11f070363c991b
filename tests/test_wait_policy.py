"""fgssl's commands make OpenMP threads spin only briefly (GOMP_SPINCOUNT=1000) before they
sleep, unless the user chose a wait policy or a spin count: libgomp's default 3 ms spin made
CPU training 13x slower on a busy machine (scripts/wait_policy.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "import fgssl, os; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
)
OPENMP_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, "None 1000"),  # nothing chosen: a short spin
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE None"),  # a policy chosen: libgomp's own count
        ({"OMP_WAIT_POLICY": "PASSIVE"}, "PASSIVE None"),
        ({"GOMP_SPINCOUNT": "5"}, "None 5"),  # a spin count chosen: kept
    ],
)
def test_importing_fgssl_first_sets_a_short_spin_unless_the_user_chose(
    given: dict[str, str], expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_KEYS} | given
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
