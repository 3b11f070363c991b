"""fgssl's commands make OpenMP threads sleep, not spin, while they wait (unless the user
chose a policy): spinning made CPU training 13x slower on a busy machine."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "import fgssl, os; print(os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_fgssl_first_sets_a_passive_wait_policy_unless_set(
    given: str | None, expected: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
