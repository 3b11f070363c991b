"""fgssl-prepare: check a dataset and fill its image cache before training.

    fgssl-prepare +experiment=aptos data.root=/data/aptos2019 [data.cache_dir=/scratch/cache]
    fgssl-prepare --workers 16 data=folder data.root=/data/mine data.cache_dir=/scratch/cache

Takes the same overrides as fgssl-train, builds the data module of that config, reads its
files (the same errors as training), then decodes every image once, storing it resized in
``data.cache_dir``. Unreadable images are listed (or, with ``data.missing_images=skip``,
counted). Later training runs, and every epoch, read the cache.
"""

from __future__ import annotations

import argparse
import logging
import sys

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from fgssl.cli.common import hydra_arguments
from fgssl.data.prepare import CacheReport, fill_cache
from fgssl.errors import FgsslError
from fgssl.run.factory import instantiate_datamodule

__all__ = ["cli", "main"]

log = logging.getLogger("fgssl")


def compose_config(overrides: list[str]) -> DictConfig:
    """fgssl-train's config with ``overrides``."""
    with initialize_config_module("fgssl.conf", version_base="1.3"):
        return compose("train", overrides=hydra_arguments(overrides))


def prepare(
    cfg: DictConfig, *, workers: int | None = None, show_progress: bool = True
) -> CacheReport:
    """Build ``cfg.data`` and fill its cache (see :func:`fgssl.data.prepare.fill_cache`)."""
    datamodule = instantiate_datamodule(cfg)
    if not show_progress:
        return fill_cache(datamodule, workers=workers)
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task("caching images", total=None)
        return fill_cache(
            datamodule,
            workers=workers,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )


def main(argv: list[str] | None = None) -> int:
    """Run fgssl-prepare with command-line arguments ``argv``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="fgssl-prepare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workers", type=int, default=None, help="decoding threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help="config overrides, as for fgssl-train")
    args = parser.parse_intermixed_args(argv)  # overrides may follow the options, as in fgssl-eval
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = compose_config(args.overrides)
        report = prepare(cfg, workers=args.workers, show_progress=not args.no_progress)
    except (FgsslError, HydraException) as error:
        print(f"fgssl-prepare: error: {error}", file=sys.stderr)
        return 2
    print(
        f"fgssl-prepare: {report.images} images cached in {cfg.data.cache_dir} "
        f"({report.built} built, {report.already_cached} already there, "
        f"{report.left_out} unreadable left out; {report.megabytes:.1f} MiB) "
        f"in {report.seconds:.1f} s"
    )
    return 0


def cli() -> None:
    """Console entry point of ``fgssl-prepare``."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
