"""Speed options (channels_last, torch.compile, mixed precision, activation checkpointing):
images per second of both phases with and without each, and the price of checkpointing."""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks.common import print_table, ratio
from benchmarks.steps import run_measurement

NAME = "options"


def run(args: argparse.Namespace) -> dict[str, Any]:
    cuda = args.device.startswith("cuda")
    variants: dict[str, dict[str, Any]] = {"plain": {}, "channels_last": {"channels_last": True}}
    if cuda:
        variants["16-mixed"] = {"precision": "16-mixed"}
        variants["16-mixed + channels_last"] = {"precision": "16-mixed", "channels_last": True}
        variants["bf16-mixed"] = {"precision": "bf16-mixed"}
        variants["compile"] = {"compile": True}
    else:
        variants["bf16-mixed"] = {"precision": "bf16-mixed"}
    repeats = 1 if args.smoke else max(2, args.repeats // 2)
    rows = []
    for phase in ("finetune", "pretrain"):
        for name, options in variants.items():
            result = run_measurement(f"progressive_{phase}", args, repeats=repeats, **options)
            batch = int(result["config"].split("batch ")[1].split(",")[0])
            rows.append(
                {
                    "phase": phase,
                    "option": name,
                    "images_per_s": batch / result["seconds"],
                    "peak_mib": result["peak_mib"],
                }
            )
    for row in rows:
        plain = next(r for r in rows if r["phase"] == row["phase"] and r["option"] == "plain")
        row["speed_vs_plain"] = row["images_per_s"] / plain["images_per_s"]
    print_table(f"speed options, progressive steps on {args.device}", rows)

    size, batch = (32, 2) if args.smoke else (448, 4)
    price = []
    for checkpointing in (False, True):
        result = run_measurement(
            "progressive_finetune",
            args,
            size=size,
            batch=batch,
            checkpointing=checkpointing,
            repeats=repeats,
        )
        price.append(
            {
                "checkpointing": checkpointing,
                "ms": result["seconds"] * 1e3,
                "peak_mib": result["peak_mib"],
            }
        )
    price.append(
        {
            "checkpointing": "ratio on/off",
            "ms": price[1]["ms"] / price[0]["ms"],
            "peak_mib": ratio(price[1]["peak_mib"], price[0]["peak_mib"]),
        }
    )
    print_table(
        f"activation checkpointing, progressive finetune step, {size}px batch {batch}", price
    )
    return {"options": rows, "activation_checkpointing": price}
