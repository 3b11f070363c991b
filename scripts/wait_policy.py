"""How much OpenMP's wait policy matters on a CPU shared with other work.

Times a few training steps of a ResNet-18 (batch 8, 64 px, torch's default thread count)
in a fresh process per setting (libgomp's default 3 ms spin, ``OMP_WAIT_POLICY=PASSIVE``,
``GOMP_SPINCOUNT=1000``), with ``--busy`` processes spinning beside it, then again with the
cores idle, and prints seconds and each setting's time relative to the default. fgssl's
commands set ``GOMP_SPINCOUNT=1000`` unless a wait policy or spin count is set
(``fgssl/__init__.py``).

    python scripts/wait_policy.py [--busy N] [--steps N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys

STEP = """
import time, torch, timm
torch.manual_seed(0)
m = timm.create_model("resnet18", pretrained=False, num_classes=5)
x = torch.randn(8, 3, 64, 64)
m(x).sum().backward()
t = time.perf_counter()
for _ in range({steps}):
    m(x).sum().backward()
print(time.perf_counter() - t)
"""


def spin() -> None:
    while True:
        pass


SETTINGS: dict[str, dict[str, str]] = {
    "default": {},
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
}


def timed(setting: dict[str, str], steps: int) -> float:
    chosen = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
    env = {k: v for k, v in os.environ.items() if k not in chosen}
    env |= setting
    code = STEP.format(steps=steps)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    for busy in (args.busy, 0):
        spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(busy)]
        for p in spinners:
            p.start()
        try:
            seconds = {name: timed(setting, args.steps) for name, setting in SETTINGS.items()}
        finally:
            for p in spinners:
                p.terminate()
        default = seconds["default"]
        print(
            f"{busy} busy process(es): "
            + ", ".join(f"{name} {t:.2f} s ({t / default:.2f}x)" for name, t in seconds.items())
        )


if __name__ == "__main__":
    main()
