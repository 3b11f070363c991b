"""The image cache: built once, read afterwards, rebuilt when the source changes, safe for
concurrent builders; fgssl-prepare fills it."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import fgssl.data.cache
from fgssl.cli.prepare import main as prepare_main
from fgssl.data import APTOS2019DataModule, ImageCache, read_rgb
from fgssl.errors import ConfigError


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The real fundus photograph (1411 x 1411) and a few generated wide images."""
    skimage_data = pytest.importorskip("skimage.data")
    folder = tmp_path_factory.mktemp("photos")
    paths = [folder / "retina.png"]
    cv2.imwrite(str(paths[0]), skimage_data.retina()[..., ::-1])
    rng = np.random.default_rng(0)
    for index in range(5):
        paths.append(folder / f"wide{index}.jpg")
        cv2.imwrite(str(paths[-1]), rng.integers(0, 256, (90, 160, 3), dtype=np.uint8))
    return paths


def forbid_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any decode of a source image fail: what still works comes from the cache."""

    def fail(path: object, **options: object) -> np.ndarray:
        raise AssertionError(f"decoded the source {path} instead of reading the cache")

    monkeypatch.setattr(fgssl.data.cache, "read_rgb", fail)


def test_built_once_then_read_from_the_cache(
    photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ImageCache(tmp_path / "cache", 64)
    image, built = cache.load(photos[0])
    assert built and image.shape == (64, 64, 3) and image.dtype == np.uint8
    reference = cv2.resize(read_rgb(photos[0]), (64, 64), interpolation=cv2.INTER_AREA)
    assert np.array_equal(image, reference)
    entry = cache.entry(photos[0])
    assert entry.is_file() and entry.suffix == ".npy"
    wide, _ = cache.load(photos[1])
    assert wide.shape == (64, 114, 3)  # short side to 64, aspect kept
    forbid_decoding(monkeypatch)
    again, built = cache.load(photos[0])
    assert not built and np.array_equal(again, image)
    assert (cache.builds, cache.hits) == (2, 1)


def test_changed_source_or_setting_gets_a_new_entry(photos: list[Path], tmp_path: Path) -> None:
    source = tmp_path / "lesion.png"
    cv2.imwrite(str(source), np.full((80, 120, 3), 40, np.uint8))
    cache = ImageCache(tmp_path / "cache", 32)
    first, _ = cache.load(source)
    old_entry = cache.entry(source)
    cv2.imwrite(str(source), np.full((80, 120, 3), 200, np.uint8))
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    assert cache.entry(source) != old_entry
    second, built = cache.load(source)
    assert built and first.mean() == 40 and second.mean() == 200
    assert ImageCache(tmp_path / "cache", 48).entry(source) != cache.entry(source)
    jpeg = ImageCache(tmp_path / "cache", 32, fmt="jpg")
    assert jpeg.entry(source).suffix == ".jpg"
    image, built = jpeg.load(source)
    assert built and np.abs(image.astype(int) - second).max() <= 2
    assert np.array_equal(jpeg.load(source)[0], image)


def test_small_images_are_stored_as_they_are(photos: list[Path], tmp_path: Path) -> None:
    image, _ = ImageCache(tmp_path, 500).load(photos[1])
    assert np.array_equal(image, read_rgb(photos[1]))


def test_damaged_entry_is_rebuilt(
    photos: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = ImageCache(tmp_path, 32)
    image, _ = cache.load(photos[2])
    cache.entry(photos[2]).write_bytes(b"\x93NUMPY garbage")
    with caplog.at_level(logging.WARNING):
        again, built = cache.load(photos[2])
    assert built and np.array_equal(again, image) and "damaged cache entry" in caplog.text


def test_unwritable_cache_reads_uncached(
    photos: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    cache = ImageCache(blocked, 32)
    with caplog.at_level(logging.WARNING):
        image, built = cache.load(photos[3])
    assert not built and image.shape[0] == 32 and "cannot write to the image cache" in caplog.text


def _load_all(args: tuple[str, list[str]]) -> list[tuple[int, ...]]:
    folder, paths = args
    cache = ImageCache(folder, 40)
    return [cache(path).shape for path in paths]


def test_concurrent_builders_leave_whole_entries(photos: list[Path], tmp_path: Path) -> None:
    """Processes (dataloader workers, DDP ranks) and threads building the same entries."""
    paths = [str(p) for p in photos] * 2
    jobs = [(str(tmp_path), paths), (str(tmp_path), paths[::-1]), (str(tmp_path), paths)]
    with multiprocessing.get_context("fork").Pool(3) as pool:
        shapes = pool.map(_load_all, jobs)
    cache = ImageCache(tmp_path, 40)
    threads = [threading.Thread(target=cache, args=(photos[0],)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert shapes[0] == shapes[1][::-1] == shapes[2]
    entries = sorted(tmp_path.rglob("*.npy"))
    assert len(entries) == len(photos)
    assert all(np.load(e).shape[2] == 3 for e in entries)
    assert not list(tmp_path.rglob("*.tmp"))  # no half-written files left behind


def test_bad_cache_settings(aptos_root: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^data\.cache_size=100 is smaller than data\.resize_size=256: "
    ):
        APTOS2019DataModule(aptos_root, cache_dir=tmp_path, cache_size=100)
    with pytest.raises(ConfigError, match=r"data\.bits_stored must be null or 8\.\.16, got 17"):
        ImageCache(tmp_path, 64, bits_stored=17)
    with pytest.raises(ConfigError, match=r"cache_format must be one of \['npy', 'jpg'\]"):
        APTOS2019DataModule(aptos_root, cache_dir=tmp_path, cache_format="png")


def test_cache_size_follows_the_image_size(aptos_root: Path, tmp_path: Path) -> None:
    """Unset, the cached short side is twice image_size, and never below resize_size."""
    small = APTOS2019DataModule(aptos_root, image_size=96, cache_dir=tmp_path)
    assert (small.resize_size, small.cache is not None and small.cache.short_side) == (110, 192)
    wide = APTOS2019DataModule(aptos_root, image_size=96, resize_size=250, cache_dir=tmp_path)
    assert wide.cache is not None and wide.cache.short_side == 250


def test_bits_stored_is_part_of_the_entry(tmp_path: Path) -> None:
    """12-bit data in a 16-bit PNG: cached by the reading rule of its bits_stored setting."""
    source = tmp_path / "scan.png"
    cv2.imwrite(str(source), np.arange(4096, dtype=np.uint16).reshape(64, 64))
    plain, twelve = ImageCache(tmp_path / "c", 64), ImageCache(tmp_path / "c", 64, bits_stored=12)
    assert plain.entry(source) != twelve.entry(source)
    assert len(np.unique(plain(source))) == 16 and len(np.unique(twelve(source))) == 256
    assert np.array_equal(twelve(source), read_rgb(source, bits_stored=12))
    assert (twelve.builds, twelve.hits) == (1, 1)


def aptos_module(root: Path, cache: Path, **kwargs: object) -> APTOS2019DataModule:
    options: dict[str, object] = dict(
        image_size=32, resize_size=36, batch_size=4, num_workers=0, cache_dir=cache
    )
    options.update(kwargs)
    return APTOS2019DataModule(root, **options)  # type: ignore[arg-type]


def test_data_module_reads_the_cache_on_the_second_pass(
    aptos_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dm = aptos_module(aptos_copy, tmp_path / "cache")
    assert dm.cache is not None and dm.cache.short_side == 64  # twice the image size
    train = dm.dataset("train", pipeline="eval")
    first = [train[i]["image"] for i in range(len(train))]
    assert dm.cache.builds == len(train) == 48 and dm.cache.hits == 0
    with monkeypatch.context() as patch:
        forbid_decoding(patch)
        second = [train[i]["image"] for i in range(len(train))]
    assert dm.cache.hits == len(train) and dm.cache.builds == len(train)
    assert all((a == b).all() for a, b in zip(first, second, strict=True))
    changed = Path(train.paths[5])
    cv2.imwrite(str(changed), np.zeros((48, 48, 3), np.uint8))
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    rebuilt = train[5]["image"]
    assert dm.cache.builds == len(train) + 1  # only the changed image is decoded again
    assert not (rebuilt == first[5]).all()


def test_dataloader_workers_build_the_cache(aptos_root: Path, tmp_path: Path) -> None:
    dm = aptos_module(aptos_root, tmp_path / "cache", num_workers=2, persistent_workers=False)
    batches = list(dm.train_dataloader())
    assert len(batches) == 12
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 48
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_fgssl_prepare_fills_the_cache_and_reports_bad_images(
    aptos_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    args = [
        "--no-progress",
        "+experiment=aptos",
        f"data.root={aptos_copy}",
        f"data.cache_dir={cache}",
        "data.image_size=32",
        "data.resize_size=36",
    ]
    assert prepare_main(args) == 0
    assert "66 images cached" in capsys.readouterr().out  # 60 train.csv + 6 test.csv
    assert len(list(cache.rglob("*.npy"))) == 66
    assert prepare_main(args) == 0
    assert "(0 built, 66 already there" in capsys.readouterr().out

    image_id = pd.read_csv(aptos_copy / "train.csv", dtype=str)["id_code"][7]
    victim = aptos_copy / "train_images" / f"{image_id}.png"
    data = bytearray(victim.read_bytes())
    data[100:-100] = bytes(len(data) - 200)  # intact signature and ending, broken pixels
    victim.write_bytes(bytes(data))
    assert prepare_main(args) == 2
    assert f"{image_id}.png" in capsys.readouterr().err
    assert prepare_main([*args, "data.missing_images=skip"]) == 0
    assert "1 unreadable left out" in capsys.readouterr().out


def test_fgssl_prepare_needs_a_cache_folder(
    aptos_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = prepare_main(
        ["--no-progress", "data=folder", f"data.root={aptos_root}", "data.cache_dir=null"]
    )
    assert code == 2 and "set data.cache_dir=" in capsys.readouterr().err
