"""fgssl-export: a trained run or checkpoint to ONNX and TorchScript, with its preprocessing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fgssl.cli.common import add_checkpoint_argument, add_preprocess_option, run_command
from fgssl.evaluation.export import EXPORT_FORMATS, export_run
from fgssl.run.loading import load_run

PROG = "fgssl-export"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Export (on the CPU) a trained fgssl network for use without fgssl: model.onnx "
            "(ONNX, opset 18, run with onnxruntime) and model.pt (TorchScript), each mapping "
            "a float32 batch 'image' (B, 3, S, S) of preprocessed RGB images to "
            "'probabilities' (B, C), the combined prediction; model.preprocessing.json "
            "beside them gives the image size, resize size, mean/std, class names, the "
            "per-image preprocessing (data.preprocess, applied before the model; "
            "fgssl-predict model.onnx does) and the exact evaluation pipeline. Each file is "
            "checked against PyTorch on random images (the largest difference of the "
            "probabilities is printed)."
        ),
        epilog=(
            "examples:\n"
            "  fgssl-export outputs/aptos/2024-05-01_10-00-00 -o exported/\n"
            "  fgssl-export model.ckpt -o exported/ --image-size 224 --format onnx"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_checkpoint_argument(parser)
    parser.add_argument("-o", "--output", default="exported", help="folder (default: %(default)s)")
    parser.add_argument(
        "--format",
        action="append",
        choices=EXPORT_FORMATS,
        help="a format to write (repeatable; default: both)",
    )
    parser.add_argument(
        "--config",
        help="the run's config.yaml, for its image size and transforms (default: the one in "
        "the checkpoint's run directory)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        help="without a run config: resize the short side to 8/7 of this, centre-crop it",
    )
    add_preprocess_option(parser)
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow full unpickling of a checkpoint that weights-only loading refuses "
        "(runs code stored in the file: only for files you trust)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    return parser


def _export(args: argparse.Namespace) -> int:
    loaded = load_run(args.path, config=args.config, trusted=args.trust_checkpoint)
    loaded.require_classifier()
    exported = export_run(
        loaded.module.net,
        loaded.config,
        loaded.class_names,
        args.output,
        formats=args.format or EXPORT_FORMATS,
        image_size=args.image_size,
        preprocess=args.preprocess,
        source=str(loaded.checkpoint),
    )
    for name, path in exported["files"].items():
        difference = exported["max_abs_difference"][name]
        print(
            f"{name}: {path} (max abs difference of the probabilities to PyTorch {difference:.2g})"
        )
    return 0


main = run_command(PROG, build_parser(), _export)


def cli(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``fgssl-export``."""
    sys.exit(main(argv))


if __name__ == "__main__":
    cli()
