"""Finding unreadable image files before training: a cheap structural screen, or a decode."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Literal

import numpy as np

from fgssl.data.io import HEADER_BYTES, SUPPORTED_FORMATS, image_format, read_rgb
from fgssl.data.workers import available_cpus
from fgssl.errors import ConfigError, ImageReadError

__all__ = ["VERIFY_MODES", "find_unreadable", "screen_image"]

VerifyMode = Literal["header", "decode", "none"]
VERIFY_MODES = ("header", "decode", "none")
"""header: check each file's signature and ending (fast; a file that fails is decoded to be
sure, and so is the first file of each extension, so that a format or sample type the
reading rule refuses or warns about shows before training); decode: decode every image (a
JPEG libjpeg finds damaged counts as unreadable: :mod:`fgssl.data.jpeg_damage`); none: no
check before training."""

_TAIL_BYTES = 4096
_SMALL_FILE = 1 << 16  # smaller files are simply decoded


def screen_image(path: str | os.PathLike[str]) -> str | None:
    """A reason to doubt that ``path`` is a complete image, from its first and last bytes
    only, or None. PNGs must end with their IEND chunk and JPEGs with an end-of-image
    marker, which truncated files lack."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as file:
            head = file.read(HEADER_BYTES)
            file.seek(max(0, size - _TAIL_BYTES))
            tail = file.read()
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if size == 0:
        return "is empty (0 bytes)"
    kind = image_format(head)
    if kind is None:
        formats = ", ".join(SUPPORTED_FORMATS)
        return f"has an unsupported format (it starts with the signature of none of {formats})"
    if kind not in SUPPORTED_FORMATS:
        return f"is a {kind} file, an unsupported format"
    if kind == "PNG" and b"IEND" not in tail:
        return "is a truncated PNG (no IEND chunk at its end)"
    if kind == "JPEG" and b"\xff\xd9" not in tail:
        return "is a truncated JPEG (no end-of-image marker at its end)"
    if kind == "WebP" and int.from_bytes(head[4:8], "little") + 8 > size:
        return "is a truncated WebP file"
    return None


def _decode_problem(path: str, reader: Callable[[str], np.ndarray]) -> str | None:
    try:
        reader(path)
    except ImageReadError as error:
        return str(error)
    return None


def _problem(
    path: str,
    mode: VerifyMode,
    reader: Callable[[str], np.ndarray],
    bits_stored: int | None,
    probe: bool,
) -> str | None:
    if mode == "decode":
        return _decode_problem(path, reader)
    reason = screen_image(path)
    try:
        small = os.path.getsize(path) < _SMALL_FILE
    except OSError:
        small = False
    if reason is None and not (small or probe):
        return None
    # A doubtful, small or probe file is decoded (by the reading rule, not into the
    # cache): only a failed decode condemns it.
    problem = _decode_problem(path, functools.partial(read_rgb, bits_stored=bits_stored))
    if problem is None:
        return None
    return f"{path!r} {reason}" if reason else problem


def find_unreadable(
    paths: Iterable[str | os.PathLike[str]],
    *,
    mode: VerifyMode = "header",
    reader: Callable[[str], np.ndarray] = read_rgb,
    bits_stored: int | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, str]:
    """The files among ``paths`` that cannot be read as images, with the reason for each.

    ``mode``: see :data:`VERIFY_MODES`. ``reader`` decodes in ``"decode"`` mode (an
    :class:`~fgssl.data.cache.ImageCache` fills the cache as it checks); ``"header"`` mode
    decodes with :func:`~fgssl.data.io.read_rgb` and ``bits_stored``, the same rule.
    Files are checked by ``workers`` threads (default: the available CPUs, at most 16);
    ``progress(done, total)`` is called after each file.
    """
    if mode not in VERIFY_MODES:
        raise ConfigError(f"verify_images must be one of {list(VERIFY_MODES)}, got {mode!r}")
    unique = list(dict.fromkeys(str(Path(p)) for p in paths))
    if mode == "none" or not unique:
        return {}
    workers = workers or min(16, available_cpus())
    probes = set({Path(path).suffix.lower(): path for path in reversed(unique)}.values())
    problems: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(_problem, path, mode, reader, bits_stored, path in probes): path
            for path in unique
        }
        for done, future in enumerate(as_completed(futures), start=1):
            reason = future.result()
            if reason:
                problems[futures[future]] = reason
            if progress is not None:
                progress(done, len(unique))
    return {path: problems[path] for path in unique if path in problems}
