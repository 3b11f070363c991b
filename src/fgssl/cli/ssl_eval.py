"""fgssl-ssl-eval: linear probe and k-NN on the frozen features of a (pretrained) checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from fgssl.atomic import write_text_atomically
from fgssl.cli.common import add_common_options, resolve_device, run_command
from fgssl.evaluation.features import FEATURES
from fgssl.evaluation.ssl import PROTOCOLS, evaluate_frozen
from fgssl.run.loading import build_eval_datamodule, load_run
from fgssl.undefined import format_metric, undefined_to_null

PROG = "fgssl-ssl-eval"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "The standard self-supervised evaluation protocols on frozen features: a "
            "logistic-regression linear probe and a weighted k-NN classifier, fitted on the "
            "training split and scored on --split with the task metrics."
        ),
        epilog=(
            "examples:\n"
            "  fgssl-ssl-eval outputs/demo/2024-05-01_10-00-00            # the pretrained net\n"
            "  fgssl-ssl-eval RUN --phase finetune --protocol knn --knn-k 10\n"
            "  fgssl-ssl-eval pretrain.ckpt --config RUN/config.yaml data.root=/data/aptos"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_arguments(parser)
    _add_protocol_options(parser)
    parser.add_argument("--config", help="the run's config.yaml (default: found in the run)")
    parser.add_argument(
        "--output",
        help="JSON file for the results "
        "(default: <run dir>/ssl_eval_<phase or random_init>_<features>_<split>.json)",
    )
    add_common_options(parser)
    return parser


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """What to evaluate: the run or checkpoint, the changes to its config, the split."""
    parser.add_argument(
        "path",
        help="a run directory (uses the checkpoint of --phase) or a .ckpt of either phase",
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="changes to the run's config"
    )
    parser.add_argument(
        "--phase",
        choices=["pretrain", "finetune"],
        default="pretrain",
        help="which checkpoint of a run directory (default: %(default)s)",
    )
    parser.add_argument("--split", default="test", help="split to score (default: test)")


def _add_protocol_options(parser: argparse.ArgumentParser) -> None:
    """How to evaluate: the protocols, the features, their settings, the random reference."""
    parser.add_argument(
        "--protocol",
        nargs="+",
        choices=PROTOCOLS,
        default=list(PROTOCOLS),
        help="protocols to run (default: both)",
    )
    parser.add_argument(
        "--features",
        choices=FEATURES,
        default="backbone",
        help="backbone: the pooled last backbone stage (the standard protocol); embeddings: "
        "every head's whole-image embedding, concatenated (default: %(default)s)",
    )
    parser.add_argument("--knn-k", type=int, default=20, help="neighbours (default: 20)")
    parser.add_argument(
        "--knn-temperature", type=float, default=0.07, help="vote temperature (default: 0.07)"
    )
    parser.add_argument(
        "--probe-c", type=float, default=1.0, help="inverse L2 strength of the probe (default: 1)"
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="score the checkpoint's network with random weights instead (seeded by --seed): "
        "the reference that features pretrained from scratch should beat (a run that started "
        "from ImageNet weights should be compared with those)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-init (default: 0)")


def _evaluate(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    loaded = load_run(
        args.path,
        phase=args.phase,
        config=args.config,
        trusted=args.trust_checkpoint,
        random_init=args.random_init,
    )
    datamodule = build_eval_datamodule(loaded.require_config(), args.overrides)
    results = evaluate_frozen(
        loaded.module.net,
        datamodule,
        split=args.split,
        protocols=tuple(args.protocol),
        device=resolve_device(args.device),
        knn_k=args.knn_k,
        knn_temperature=args.knn_temperature,
        probe_c=args.probe_c,
        features=args.features,
    )
    results["checkpoint"] = str(loaded.checkpoint)
    results["random_init"] = args.random_init
    folder = loaded.run_dir or loaded.checkpoint.parent
    name = "random_init" if args.random_init else args.phase
    default_name = f"ssl_eval_{name}_{args.features}_{args.split}.json"
    output = Path(args.output) if args.output else folder / default_name
    output.parent.mkdir(parents=True, exist_ok=True)
    # undefined metrics (NaN) are null: JSON has no NaN
    write_text_atomically(output, json.dumps(undefined_to_null(results), indent=2) + "\n")
    protocols = [p for p in PROTOCOLS if p in results]
    weights = "random weights in the network" if args.random_init else "frozen features"
    print(
        f"{weights} ({args.features}, {results['feature_dim']} dims) of {loaded.checkpoint}: "
        f"fitted on {results['train_images']} train images, scored on {results['eval_images']} "
        f"{args.split} images"
    )
    print(f"{'metric':<28}" + "".join(f"{p:>14}" for p in protocols))
    for name in results[protocols[0]]:
        print(f"{name:<28}" + "".join(format_metric(results[p][name], 14) for p in protocols))
    print(f"\nwritten: {output}")
    return 0


main = run_command(PROG, build_parser(), _evaluate)


def cli(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``fgssl-ssl-eval``."""
    sys.exit(main(argv))


if __name__ == "__main__":
    cli()
