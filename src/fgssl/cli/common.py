"""What the argparse-based console commands share: error handling, logging, devices."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch

from fgssl.data.preprocess import PREPROCESSINGS
from fgssl.errors import ConfigError, FgsslError
from fgssl.evaluation.ensemble import common_setting
from fgssl.evaluation.inference import PRECISIONS, default_device, run_precision
from fgssl.ops.tta import ALIASES, VIEWS, tta_views

__all__ = [
    "MODELS_HELP",
    "add_checkpoint_argument",
    "add_common_options",
    "add_precision_option",
    "add_preprocess_option",
    "add_tta_option",
    "hydra_arguments",
    "plain_group_choices",
    "quote_schedule_choices",
    "resolve_device",
    "resolve_precision",
    "resolve_tta",
    "run_command",
]


def add_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    """The positional ``path``: a run directory or a finetuned .ckpt (see
    :func:`fgssl.run.loading.load_run`)."""
    parser.add_argument(
        "path",
        help="a run directory of fgssl-train (uses finetune/checkpoints/best.ckpt) or a .ckpt",
    )


MODELS_HELP = (
    "a run directory of fgssl-train (uses finetune/checkpoints/best.ckpt) or a .ckpt; "
    "several: an ensemble averaging their class probabilities (a sweep directory stands "
    "for its finished jobs, e.g. the folds of a fold sweep)"
)


def add_tta_option(parser: argparse.ArgumentParser) -> None:
    """--tta and --tta-views (see :func:`resolve_tta`)."""
    parser.add_argument(
        "--tta",
        action="store_true",
        help="average the probabilities over 4 flips of each image (--tta-views flips)",
    )
    parser.add_argument(
        "--tta-views",
        metavar="VIEWS",
        help=f"test-time augmentation: none, {', '.join(ALIASES)} or a comma-separated list "
        f"of {', '.join(VIEWS)} (default: the run's tta, as its own test)",
    )


def resolve_tta(args: argparse.Namespace, configs: Sequence[Any]) -> tuple[str, ...]:
    """The test-time augmentation views: ``--tta-views``, ``--tta`` (the four flips), else
    the ``tta`` of the runs' configs (``configs``; None: none), which must agree
    (:func:`fgssl.evaluation.ensemble.common_setting`). ConfigError names the option."""
    if args.tta and args.tta_views is not None:
        raise ConfigError("--tta and --tta-views: give one (--tta is --tta-views flips)")
    if args.tta_views is not None:
        return tta_views(args.tta_views, key="--tta-views")
    if args.tta:
        return ALIASES["flips"]
    runs = [tta_views(c.get("tta") if c is not None else None, key="tta") for c in configs]
    return tuple(common_setting(runs or [()], what="tta", option="--tta-views"))


def add_precision_option(parser: argparse.ArgumentParser) -> None:
    """--precision (see :func:`resolve_precision`)."""
    parser.add_argument(
        "--precision",
        help="precision of the network's forward passes, one of "
        f"{', '.join(PRECISIONS)} (default: the run's trainer.precision, in which its own "
        "test ran, so that the numbers agree with its results.json)",
    )


def add_preprocess_option(parser: argparse.ArgumentParser) -> None:
    """--preprocess (see :func:`fgssl.evaluation.predict.run_preprocessing`)."""
    parser.add_argument(
        "--preprocess",
        choices=[*PREPROCESSINGS, "none"],
        help="without a run config: the data.preprocess the model was trained with, at "
        "--image-size (default: none); a run config or an exported model names its own, "
        "and another value is refused",
    )


def resolve_precision(option: str | None, config: Any, prog: str) -> str:
    """The precision to run a checkpoint in: ``--precision`` (``option``), else the run's
    ``trainer.precision`` (``config``: its config.yaml; None: float32). An option other than
    the run's is used after a line on stderr saying that the numbers may then differ from
    the run's; ConfigError names a precision that inference cannot reproduce."""
    trainer = (config.get("trainer") if config is not None else None) or {}
    try:
        run = run_precision(trainer.get("precision"))
    except ConfigError as error:
        raise ConfigError(f"the run's trainer.{error}: choose one with --precision") from None
    if option is None:
        return run
    try:
        chosen = run_precision(option)
    except ConfigError as error:
        raise ConfigError(f"--{error}") from None
    if chosen != run and config is not None:
        print(
            f"{prog}: --precision {chosen}, but the run was tested in {run}: the numbers may "
            "differ from its own (results.json)",
            file=sys.stderr,
        )
    return chosen


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """--device, --trust-checkpoint and --verbose."""
    parser.add_argument(
        "--device",
        default=None,
        help="torch device to run on, e.g. cpu, cuda, cuda:1 (default: cuda if available)",
    )
    parser.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="allow full unpickling of a checkpoint that weights-only loading refuses "
        "(runs code stored in the file: only for files you trust)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")


def resolve_device(name: str | None) -> torch.device:
    """``name`` as a torch device (``None``: CUDA if available, else the CPU)."""
    if name is None:
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise FgsslError(f"--device {name!r} is not a torch device: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FgsslError(f"--device {name!r}: CUDA is not available on this machine")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise FgsslError(
            f"--device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
            f"cuda:0 to cuda:{torch.cuda.device_count() - 1}"
        )
    return device


def run_command(
    prog: str, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int]
) -> Callable[[Sequence[str] | None], int]:
    """An entry point that parses arguments, runs ``body`` and turns fgssl's errors into one
    line on stderr and exit status 2 (``body`` returns the exit status otherwise)."""

    def main(argv: Sequence[str] | None = None) -> int:
        args = parser.parse_intermixed_args(argv)
        logging.basicConfig(
            level=logging.INFO if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
        try:
            return body(args)
        except FgsslError as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130

    return main


UNCHOSEN_GROUPS = ("experiment", "method", "hparams_search")
"""The config groups of ``train.yaml``'s defaults list that choose nothing by default
(``experiment: null``): ``experiment=NAME`` chooses one, as in lightning-hydra-template."""
_APPENDED_GROUP = re.compile(rf"^\+(?=(?:{'|'.join(UNCHOSEN_GROUPS)})=)")


def plain_group_choices(argv: Sequence[str]) -> list[str]:
    """``+experiment=demo`` -> ``experiment=demo`` (also ``+method=``, ``+hparams_search=``),
    every other argument as it is. Hydra refuses to append (``+``) a group its defaults list
    already holds; the ``+`` spelling, which fgssl's commands took before the groups were in
    the defaults list, keeps working, and means the same as the plain one."""
    return [_APPENDED_GROUP.sub("", arg, count=1) for arg in argv]


def hydra_arguments(argv: Sequence[str]) -> list[str]:
    """fgssl-train's command-line overrides as Hydra is given them (by fgssl-train,
    fgssl-prepare and :func:`fgssl.api.train`): :func:`plain_group_choices`, then
    :func:`quote_schedule_choices`."""
    return quote_schedule_choices(plain_group_choices(argv))


_SCHEDULE_OVERRIDE = re.compile(r"^(?P<key>[+~]*schedule=)(?P<value>.+)$")
_UNDERSCORED_NUMBER = re.compile(r"^\d+(_\d+)+$")


def quote_schedule_choices(argv: list[str]) -> list[str]:
    """Quote ``schedule=8_4_2,16_8_4`` so Hydra does not read 8_4_2 as the integer 842 (the
    old schedule names; ``grids_8_4_2`` and the like need no quoting)."""
    quoted = []
    for arg in argv:
        match = _SCHEDULE_OVERRIDE.match(arg)
        if match:
            items = match["value"].split(",")
            items = [f"'{item}'" if _UNDERSCORED_NUMBER.match(item) else item for item in items]
            arg = match["key"] + ",".join(items)
        quoted.append(arg)
    return quoted
