"""How much OpenMP's wait policy matters on a CPU shared with other work.

Times a few training steps of a ResNet-18 (batch 8, 64 px, torch's default thread count)
in a fresh process per policy, with ``--busy`` processes (default: one per core) spinning
beside it, then again with the cores idle, and prints seconds and the ratio
default/PASSIVE. fgssl's commands set ``OMP_WAIT_POLICY=PASSIVE`` unless it is set
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


def timed(policy: str | None, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
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
            default, passive = timed(None, args.steps), timed("PASSIVE", args.steps)
        finally:
            for p in spinners:
                p.terminate()
        print(
            f"{busy} busy process(es): default {default:.1f} s, PASSIVE {passive:.1f} s, "
            f"default/PASSIVE {default / passive:.2f}"
        )


if __name__ == "__main__":
    main()
