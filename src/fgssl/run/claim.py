"""A run directory holds one run: the run that starts in a folder claims it, and any other
run given that folder is refused before it writes anything there.

Two runs of ``fgssl-train`` given the same folder (Hydra's default names have a resolution
of one second; an explicit ``hydra.run.dir``) would otherwise mix: the second's
``config.yaml`` and ``results.json`` would replace the first's, whose ``best.ckpt`` stays.
The claim is a marker file created with ``O_CREAT | O_EXCL``, so of two processes starting
in the same second exactly one wins; a folder that already holds any of a run's files (a
run of an fgssl without the marker) is refused too. ``resume=<run dir>`` continues a run in
its own folder and claims nothing. A sweep claims its sweep directory the same way (its
jobs' folders are then its own).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from fgssl.errors import ConfigError, RunDirectoryInUseError
from fgssl.rundir import CONFIG, FAILED, PHASES, RESULTS, RUN_MARKER, SPLIT, SWEEP_MARKER

__all__ = ["RUN_FILES", "SWEEP_FILES", "claim_run_dir", "claim_sweep_dir"]

RUN_FILES: tuple[str, ...] = (RUN_MARKER, CONFIG, SPLIT, RESULTS, FAILED, *PHASES)
"""Any of these in a folder means it holds a run (the marker first: it names who started)."""
SWEEP_FILES: tuple[str, ...] = (SWEEP_MARKER, "multirun.yaml")
"""Any of these in a folder means it holds a sweep (``multirun.yaml``: Hydra's record)."""

_claimed: set[Path] = set()
"""The folders this process has claimed: claiming one again is a no-op (fgssl-train's
Hydra callback claims the run directory before Hydra writes into it, the pipeline again)."""


def claim_run_dir(run_dir: str | os.PathLike[str]) -> Path:
    """Make ``run_dir`` (created if needed) this run's folder; returns its resolved path.

    Raises :class:`RunDirectoryInUseError` naming the folder and who started the run there
    when it already holds one (:data:`RUN_FILES`), and :class:`ConfigError` when it cannot
    be created or written.
    """
    return _claim(
        Path(run_dir),
        RUN_MARKER,
        RUN_FILES,
        what="run",
        instead=(
            "give another hydra.run.dir (or leave it out: a new folder per second), or "
            "continue that run with resume={root}"
        ),
    )


def claim_sweep_dir(sweep_dir: str | os.PathLike[str]) -> Path:
    """:func:`claim_run_dir` for a sweep directory (``hydra.sweep.dir``)."""
    return _claim(
        Path(sweep_dir),
        SWEEP_MARKER,
        SWEEP_FILES,
        what="sweep",
        instead="give another hydra.sweep.dir (or leave it out: a new folder per second)",
    )


def _claim(folder: Path, marker: str, held_by: tuple[str, ...], *, what: str, instead: str) -> Path:
    root = folder.expanduser().resolve()
    if root in _claimed:
        return root
    present = [name for name in held_by if (root / name).exists()]
    if not present:
        try:
            root.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(root / marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            present = [marker]  # another process claimed it since the look above
        except OSError as error:
            raise ConfigError(
                f"cannot write to the {what} directory {str(root)!r} "
                f"({error.strerror or error}): choose a writable location with "
                f"hydra.{'sweep' if what == 'sweep' else 'run'}.dir=..."
            ) from error
        else:
            with os.fdopen(descriptor, "w") as file:
                json.dump(_owner(), file)
                file.write("\n")
            _claimed.add(root)
            return root
    raise RunDirectoryInUseError(
        f"the {what} directory {str(root)!r} already holds a {what} "
        f"({_describe(root, present[0])}): a {what} directory is never reused, so that its "
        f"files stay one {what}'s; " + instead.format(root=root)
    )


def _owner() -> dict[str, object]:
    return {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }


def _describe(root: Path, name: str) -> str:
    """What holds ``root``: who started it (a marker), or the file found there."""
    if name not in (RUN_MARKER, SWEEP_MARKER):
        return f"its {name} is there"
    try:
        owner = json.loads((root / name).read_text())
        return f"started {owner['started']} by process {owner['pid']} on {owner['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return f"another process is starting in it ({name})"
