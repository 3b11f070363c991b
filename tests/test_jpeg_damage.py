"""A JPEG whose compressed data is damaged (markers intact) is named, not silently decoded."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import fgssl.data.io as image_io
from fgssl.data import FolderDataModule
from fgssl.data.cache import ImageCache
from fgssl.data.io import decode_rgb, read_rgb, tolerating_damage
from fgssl.data.jpeg_damage import watched_decode
from fgssl.data.verify import find_unreadable
from fgssl.errors import ImageReadError
from layouts import make_folder_tree

OPTIONS = dict(image_size=32, resize_size=36, batch_size=4, num_workers=0)


def markers(data: bytes) -> list[bytes]:
    """The JPEG markers of ``data`` (0xFF then a byte other than 0x00 stuffing or RSTn)."""
    return [
        data[i : i + 2]
        for i in range(len(data) - 1)
        if data[i] == 0xFF and data[i + 1] not in (0x00, 0xFF) and not 0xD0 <= data[i + 1] <= 0xD7
    ]


def damaged_jpeg(size: int = 128) -> tuple[bytes, bytes]:
    """(intact, damaged) JPEGs made with Pillow: the damaged one has bytes flipped inside
    its entropy-coded data, away from any 0xFF, so that every marker stays."""
    y, x = np.mgrid[0:size, 0:size]
    noise = np.random.default_rng(0).integers(0, 20, (size, size, 3))
    pixels = (np.stack([x, y, (x + y) // 2], -1) * 255 // size + noise).clip(0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "JPEG", quality=90)
    intact = buffer.getvalue()
    scan = intact.index(b"\xff\xda")
    start = scan + 2 + int.from_bytes(intact[scan + 2 : scan + 4], "big")
    end = intact.rindex(b"\xff\xd9")
    damaged = bytearray(intact)
    for offset in range(start + (end - start) // 3, start + (end - start) // 3 + 40, 4):
        flipped = damaged[offset] ^ 0x5A
        if 0xFF not in (damaged[offset - 1], damaged[offset], flipped):
            damaged[offset] = flipped
    assert markers(bytes(damaged)) == markers(intact) and bytes(damaged) != intact
    return intact, bytes(damaged)


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_io, "_warned", set())


def test_a_damaged_jpeg_is_refused_by_name(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    intact, damaged = damaged_jpeg()
    good, bad = tmp_path / "good.jpg", tmp_path / "bad.jpg"
    good.write_bytes(intact)
    bad.write_bytes(damaged)
    # OpenCV alone decodes it, with many rows garbled, and says nothing that names it
    rows = np.abs(
        cv2.imdecode(np.frombuffer(damaged, np.uint8), cv2.IMREAD_COLOR).astype(int)
        - cv2.imdecode(np.frombuffer(intact, np.uint8), cv2.IMREAD_COLOR)
    ).max(axis=(1, 2))
    assert (rows > 40).mean() > 0.2
    capfd.readouterr()
    assert decode_rgb(good)[1] is None
    with pytest.raises(ImageReadError, match=r"bad\.jpg' is a damaged JPEG.*Corrupt JPEG data"):
        read_rgb(bad)
    assert "Corrupt JPEG data" not in capfd.readouterr().err  # said once, with the name


def test_verify_decode_names_it_and_the_policy_applies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, damaged = damaged_jpeg()
    root = make_folder_tree(tmp_path / "images")
    victim = next((root / "benign").glob("*.jpg"))
    victim.write_bytes(damaged)
    problems = find_unreadable([str(victim)], mode="decode")
    assert list(problems) == [str(victim)] and "damaged JPEG" in problems[str(victim)]
    with pytest.raises(ImageReadError, match=rf"1 of 22 images cannot be read.*{victim.name}"):
        FolderDataModule(root, verify_images="decode", **OPTIONS).setup()  # type: ignore[arg-type]
    dm = FolderDataModule(
        root,
        verify_images="decode",
        missing_images="skip",
        **OPTIONS,  # type: ignore[arg-type]
    )
    with caplog.at_level(logging.WARNING):
        dm.setup()
    assert list(dm.unreadable) == [str(victim)] and "damaged JPEG" in caplog.text


def test_threads_checking_many_jpegs_name_exactly_the_damaged_ones(tmp_path: Path) -> None:
    intact, damaged = damaged_jpeg(96)
    paths = []
    for index in range(80):
        path = tmp_path / f"{index:02d}.jpg"
        path.write_bytes(damaged if index % 25 == 7 else intact)
        paths.append(str(path))
    problems = find_unreadable(paths, mode="decode", workers=8)
    assert sorted(Path(p).name for p in problems) == ["07.jpg", "32.jpg", "57.jpg"]


def test_training_reads_warn_by_name_and_the_cache_keeps_no_damage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    _, damaged = damaged_jpeg()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(damaged)
    cache = ImageCache(tmp_path / "cache", 64)
    with pytest.raises(ImageReadError, match="damaged JPEG"):
        cache(bad)
    with caplog.at_level(logging.WARNING), tolerating_damage():
        assert cache(bad).shape[2] == 3
        cache(bad)
    assert caplog.text.count("bad.jpg' is a damaged JPEG") == 1  # once per file
    assert not cache.entry(bad).exists() and cache.builds == 0  # a later check decodes it


def test_overlapping_decodes_run_together_and_each_gets_its_own_damage() -> None:
    """Threads: only the decode that wrote libjpeg's line is told (one that overlapped the
    write is decoded again alone to tell), and decodes that find nothing run in parallel."""
    line = "Corrupt JPEG data: premature end of data segment"
    results: dict[int, str | None] = {}

    def decode(index: int) -> int:
        if index == 3:
            time.sleep(0.3)
            os.write(2, line.encode() + b"\n")
        time.sleep({3: 0.05, 4: 0.4}.get(index, 0.2))  # 4 is running when 3 writes
        return index

    def work(index: int) -> None:
        value, damage = watched_decode(lambda: decode(index))
        results[value] = damage

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert results == {i: line if i == 3 else None for i in range(8)}
    # in parallel, then 3 and 4 again alone: about 0.4 + 0.35 + 0.4 s; one at a time,
    # 6 x 0.2 + 2 x (0.35 + 0.4) = 2.7 s
    assert elapsed < 2.0


def test_other_output_meanwhile_reaches_stderr(capfd: pytest.CaptureFixture) -> None:
    def decode() -> None:
        os.write(2, b"libpng warning: iCCP: known incorrect sRGB profile\n")
        os.write(2, b"Corrupt JPEG data: bad ICC marker\n")  # pixels intact: passed on

    assert watched_decode(decode) == (None, None)
    err = capfd.readouterr().err
    assert "libpng warning" in err and "bad ICC marker" in err
