"""fgssl's commands make OpenMP threads spin only briefly before they sleep
(GOMP_SPINCOUNT=1000 for libgomp, KMP_BLOCKTIME=0 for LLVM's and Intel's OpenMP), unless the
user chose: libgomp's default 3 ms spin made CPU training 13x slower on a busy machine
(scripts/wait_policy.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

OPENMP_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
PROBE = f"import fgssl, os; print(*(os.environ.get(k) for k in {OPENMP_KEYS}))"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, "None 1000 0"),  # nothing chosen: a short spin
        ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE None None"),  # a policy chosen: the runtime's
        ({"OMP_WAIT_POLICY": "PASSIVE"}, "PASSIVE None None"),
        ({"GOMP_SPINCOUNT": "5"}, "None 5 0"),  # a spin count chosen: kept
        ({"KMP_BLOCKTIME": "200"}, "None 1000 200"),
    ],
)
def test_importing_fgssl_first_sets_a_short_spin_unless_the_user_chose(
    given: dict[str, str], expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_KEYS} | given
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
