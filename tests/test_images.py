"""Decoding every kind of image file into RGB, and finding unreadable files before training."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

import fgssl.data.io as image_io
from fgssl.data import FolderDataModule, read_rgb
from fgssl.data.io import check_bits_stored
from fgssl.data.verify import find_unreadable, screen_image
from fgssl.errors import ConfigError, ImageReadError
from fgssl.evaluation.predict import image_reader
from layouts import make_folder_tree

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)


def save(path: Path, image: Image.Image) -> Path:
    image.save(path)
    return path


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = RGB[..., 0]
    decoded = read_rgb(save(tmp_path / "g.png", Image.fromarray(gray)))
    assert decoded.shape == (30, 40, 3) and decoded.dtype == np.uint8
    assert all(np.array_equal(decoded[..., c], gray) for c in range(3))


def test_rgba_drops_alpha_and_keeps_rgb_order(tmp_path: Path) -> None:
    rgba = np.dstack([RGB, np.full(RGB.shape[:2], 90, np.uint8)])
    decoded = read_rgb(save(tmp_path / "a.png", Image.fromarray(rgba)))
    assert np.array_equal(decoded, RGB)


def test_gray_with_alpha(tmp_path: Path) -> None:
    decoded = read_rgb(save(tmp_path / "la.png", Image.fromarray(RGB[..., 1]).convert("LA")))
    assert decoded.shape == (30, 40, 3) and np.array_equal(decoded[..., 2], RGB[..., 1])


def test_palette_is_expanded_through_its_palette(tmp_path: Path) -> None:
    palette_image = Image.fromarray(RGB).convert("P")
    decoded = read_rgb(save(tmp_path / "p.png", palette_image))
    assert np.array_equal(decoded, np.asarray(palette_image.convert("RGB")))


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_is_scaled_to_8_bit(tmp_path: Path, channels: int) -> None:
    wide = RGB.astype(np.uint16) * 257  # 8-bit values v spread over 16 bits as v * 257
    path = tmp_path / "w.png"
    cv2.imwrite(str(path), wide[..., ::-1] if channels == 3 else wide[..., 0])
    decoded = read_rgb(path)
    expected = RGB if channels == 3 else np.repeat(RGB[..., :1], 3, axis=2)
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, expected)


@pytest.mark.parametrize("suffix", [".jpg", ".bmp", ".tif", ".webp"])
def test_other_formats(tmp_path: Path, suffix: str) -> None:
    smooth = cv2.GaussianBlur(RGB, (0, 0), 3)
    decoded = read_rgb(save(tmp_path / f"x{suffix}", Image.fromarray(smooth)))
    assert decoded.shape == (30, 40, 3)
    assert np.abs(decoded.astype(int) - smooth).mean() < 3  # lossy formats stay close


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    landscape = np.zeros((20, 40, 3), np.uint8)
    landscape[:, :10] = 255  # a white band on the left
    image = Image.fromarray(landscape)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    decoded = read_rgb(tmp_path / "phone.jpg")
    assert decoded.shape == (40, 20, 3)
    assert decoded[:10].mean() > 200 and decoded[-10:].mean() < 50  # the band is now on top


def big_png(tmp_path: Path) -> Path:
    image = RNG.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), image)
    return path


def test_screen_finds_truncated_and_foreign_files(tmp_path: Path) -> None:
    png = big_png(tmp_path)
    jpg = tmp_path / "big.jpg"
    cv2.imwrite(str(jpg), RNG.integers(0, 256, (300, 300, 3), dtype=np.uint8))
    assert screen_image(png) is None and screen_image(jpg) is None
    (tmp_path / "half.png").write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    (tmp_path / "half.jpg").write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "page.jpg").write_text("<html>404 Not Found</html>")
    assert "truncated PNG" in str(screen_image(tmp_path / "half.png"))
    assert "truncated JPEG" in str(screen_image(tmp_path / "half.jpg"))
    assert "empty" in str(screen_image(tmp_path / "empty.png"))
    assert "signature" in str(screen_image(tmp_path / "page.jpg"))


def test_find_unreadable_names_each_file(tmp_path: Path) -> None:
    png = big_png(tmp_path)
    data = png.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) * 2 // 3])
    garbled = bytearray(data)
    garbled[200:4000] = bytes(3800)  # header and ending intact, the pixel data broken
    (tmp_path / "garbled.png").write_bytes(bytes(garbled))
    paths = [png, tmp_path / "cut.png", tmp_path / "garbled.png"]
    header = find_unreadable(paths, mode="header")
    assert list(header) == [str(tmp_path / "cut.png")]
    assert "truncated PNG" in header[str(tmp_path / "cut.png")]
    decode = find_unreadable(paths, mode="decode")
    assert set(decode) == {str(tmp_path / "cut.png"), str(tmp_path / "garbled.png")}
    assert find_unreadable(paths, mode="none") == {}
    with pytest.raises(ImageReadError, match=r"garbled\.png"):
        read_rgb(tmp_path / "garbled.png")


def test_corrupt_images_stop_setup_or_are_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_folder_tree(tmp_path / "images")
    victim = next((root / "malignant").glob("*.png"))
    victim.write_bytes(victim.read_bytes()[:60])
    options = dict(image_size=32, resize_size=36, batch_size=4, num_workers=0)
    with pytest.raises(
        ImageReadError, match=rf"1 of 22 images cannot be read.*{victim.name}.*skip"
    ):
        FolderDataModule(root, **options).setup()  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        dm = FolderDataModule(root, missing_images="skip", **options)  # type: ignore[arg-type]
        dm.setup()
    assert "1 of 22 images cannot be read" in caplog.text
    assert dm.splits is not None
    assert victim.relative_to(root).as_posix() not in set(dm.split_table()["id"])
    assert sum(len(dm.splits[s]) for s in ("train", "val")) == 21
    assert list(dm.unreadable) == [str(victim)]


# ---------------------------------------------------------------- high bit depths, floats
TWELVE_BIT = np.arange(4096, dtype=np.uint16).reshape(64, 64)  # every 12-bit value once


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reading rule's warn-once memory, emptied for this test."""
    monkeypatch.setattr(image_io, "_warned", set())


def write_16_bit(path: Path, gray: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), gray)
    return path


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_12_bit_data_in_16_bit_files(
    tmp_path: Path, suffix: str, caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    path = write_16_bit(tmp_path / f"scan{suffix}", TWELVE_BIT)
    with caplog.at_level(logging.WARNING, logger="fgssl.data.io"):
        as_16_bit = read_rgb(path)
        read_rgb(path)
    # Scaled as 16-bit data (v >> 8): 4096 values fall into 16 grey levels of 256 each.
    levels, counts = np.unique(as_16_bit[..., 0], return_counts=True)
    assert levels.tolist() == list(range(16)) and set(counts) == {256}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "data.bits_stored=12" in warnings[0] and path.name in warnings[0]
    # bits_stored=12 (v >> 4): 256 levels of 16 values each, the same on every channel.
    as_12_bit = read_rgb(path, bits_stored=12)
    levels, counts = np.unique(as_12_bit[..., 0], return_counts=True)
    assert levels.tolist() == list(range(256)) and set(counts) == {16}
    assert np.array_equal(as_12_bit[..., 0], (TWELVE_BIT // 16).astype(np.uint8))
    assert np.array_equal(as_12_bit[..., 0], as_12_bit[..., 2])


def test_16_bit_values_above_bits_stored_are_clipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    gray = np.array([[0, 4095, 4096, 65535]], dtype=np.uint16)
    path = write_16_bit(tmp_path / "over.png", gray)
    with caplog.at_level(logging.WARNING, logger="fgssl.data.io"):
        decoded = read_rgb(path, bits_stored=12)
    assert decoded[0, :, 0].tolist() == [0, 255, 255, 255]
    assert "up to 65535, above the maximum 4095 of data.bits_stored=12" in caplog.text


def test_full_range_16_bit_is_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    path = write_16_bit(tmp_path / "full.png", TWELVE_BIT * 16)  # 12-bit data, shifted up
    with caplog.at_level(logging.WARNING, logger="fgssl.data.io"):
        decoded = read_rgb(path)
    assert np.array_equal(decoded[..., 1], (TWELVE_BIT // 16).astype(np.uint8))
    assert caplog.text == ""


@pytest.mark.parametrize("bad", [7, 17, "12", 12.0, True])
def test_bits_stored_must_be_8_to_16(bad: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.bits_stored must be null or 8\.\.16"):
        check_bits_stored(bad)
    with pytest.raises(ConfigError, match=r"data\.bits_stored"):
        FolderDataModule(tmp_path, bits_stored=bad)  # type: ignore[arg-type]


def test_float_tiff_in_0_1_is_scaled_to_255(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    values = np.array([[0.0, 0.5, 1.0, 0.25, 1 / 255, 0.1 / 255]], dtype=np.float32)
    Image.fromarray(values, mode="F").save(tmp_path / "float.tif")
    with caplog.at_level(logging.WARNING, logger="fgssl.data.io"):
        decoded = read_rgb(tmp_path / "float.tif")
    # round(v * 255): 0, 127.5 -> 128 (half to even), 255, 63.75 -> 64, 1, 0.1 -> 0
    assert decoded[0, :, 0].tolist() == [0, 128, 255, 64, 1, 0]
    assert "float.tif" in caplog.text and "floating-point" in caplog.text
    colour = np.dstack([values, values / 2, np.zeros_like(values)])  # R, G, B
    assert cv2.imwrite(str(tmp_path / "colour.tif"), colour[..., ::-1])
    assert read_rgb(tmp_path / "colour.tif")[0, 2].tolist() == [255, 128, 0]


@pytest.mark.parametrize(
    ("values", "reason"),
    [([0.0, 2.0], r"values in \[0, 2\]: unsupported"), ([0.0, np.nan], "NaN or infinite")],
)
def test_float_images_outside_0_1_are_unsupported(
    tmp_path: Path, values: list[float], reason: str
) -> None:
    Image.fromarray(np.array([values], np.float32), mode="F").save(tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match=rf"'.*f\.tif' is a floating-point image.*{reason}"):
        read_rgb(tmp_path / "f.tif")


def test_32_bit_integer_tiff_is_an_unsupported_sample_type(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 4), np.int32), mode="I").save(tmp_path / "i32.tif")
    with pytest.raises(ImageReadError, match=r"int32 samples: unsupported sample type"):
        read_rgb(tmp_path / "i32.tif")


def test_unsupported_formats_are_named_so(tmp_path: Path) -> None:
    dicom = tmp_path / "scan.png"  # a DICOM file named like a PNG
    dicom.write_bytes(bytes(128) + b"DICM" + bytes(200))
    (tmp_path / "notes.png").write_text("not an image at all")
    Image.fromarray(RGB).save(tmp_path / "pic.gif")
    gif = (tmp_path / "pic.gif").read_bytes()
    (tmp_path / "cut.gif").write_bytes(gif[:30])
    with pytest.raises(ImageReadError, match=r"scan\.png.*DICOM is an unsupported format"):
        read_rgb(dicom)
    with pytest.raises(ImageReadError, match=r"notes\.png.*unsupported format \(its first"):
        read_rgb(tmp_path / "notes.png")
    with pytest.raises(ImageReadError, match=r"cut\.gif.*GIF is an unsupported format"):
        read_rgb(tmp_path / "cut.gif")
    assert "DICOM file, an unsupported format" in str(screen_image(dicom))
    problems = find_unreadable([dicom, tmp_path / "notes.png"], mode="header")
    assert "DICOM" in problems[str(dicom)] and "unsupported format" in problems[str(dicom)]


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_truncated_files_are_still_corrupt_or_truncated(tmp_path: Path, suffix: str) -> None:
    image = RNG.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    assert cv2.imwrite(str(tmp_path / f"whole{suffix}"), image)
    data = (tmp_path / f"whole{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    kind = {".png": "PNG", ".jpg": "JPEG", ".tif": "TIFF"}[suffix]
    with pytest.raises(ImageReadError, match=rf"cut\{suffix}.*a corrupt or truncated {kind} file"):
        read_rgb(tmp_path / f"cut{suffix}")


def test_header_check_decodes_one_file_per_extension(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fresh_warnings: None
) -> None:
    """Large files pass the header check undecoded, but the first of each extension is
    decoded, so a refused sample type or a 12-bit warning shows before training."""
    noisy = RNG.integers(0, 4096, (400, 400), dtype=np.uint16)  # > 64 KiB as PNG
    first = write_16_bit(tmp_path / "a.png", noisy)
    write_16_bit(tmp_path / "b.png", noisy)
    floats = RNG.random((200, 200)).astype(np.float32) * 3  # values up to 3: refused
    Image.fromarray(floats, mode="F").save(tmp_path / "c.tif")
    Image.fromarray(floats, mode="F").save(tmp_path / "d.tif")
    paths = sorted(tmp_path.iterdir())
    assert all(p.stat().st_size > 1 << 16 for p in paths)
    with caplog.at_level(logging.WARNING, logger="fgssl.data.io"):
        problems = find_unreadable(paths, mode="header")
    assert list(problems) == [str(tmp_path / "c.tif")]  # the probe; d.tif is not decoded
    assert "floating-point image with values in [" in problems[str(tmp_path / "c.tif")]
    assert "data.bits_stored=12" in caplog.text and first.name in caplog.text
    problems = find_unreadable(paths, mode="header", bits_stored=12)
    assert list(problems) == [str(tmp_path / "c.tif")]


def test_the_data_module_reads_cached_and_uncached_by_bits_stored(
    tmp_path: Path, fresh_warnings: None
) -> None:
    root = make_folder_tree(tmp_path / "images")
    scans = sorted(root.rglob("*.png"))
    for scan in scans:
        write_16_bit(scan, TWELVE_BIT)
    options = dict(image_size=32, resize_size=36, batch_size=4, num_workers=0)
    for cache in (None, tmp_path / "cache"):
        dm = FolderDataModule(root, bits_stored=12, cache_dir=cache, **options)  # type: ignore[arg-type]
        dm.setup()
        image = dm.reader(scans[0])
        assert len(np.unique(image)) == 256, cache
        plain = FolderDataModule(root, cache_dir=cache, **options)  # type: ignore[arg-type]
        assert len(np.unique(plain.reader(scans[0]))) == 16, cache
        batch = dm.dataset("val")[0]["image"]
        assert batch.shape == (3, 32, 32)


def test_prediction_reads_by_the_run_bits_stored(tmp_path: Path, fresh_warnings: None) -> None:
    path = write_16_bit(tmp_path / "scan.png", TWELVE_BIT)
    run = OmegaConf.create({"data": {"bits_stored": 12}})
    assert len(np.unique(image_reader(run)(path))) == 256
    assert len(np.unique(image_reader(None, bits_stored=12)(path))) == 256
    assert len(np.unique(image_reader(OmegaConf.create({"data": {}}))(path))) == 16
    with pytest.raises(ConfigError, match=r"data\.bits_stored must be null or 8\.\.16, got 20"):
        image_reader(None, bits_stored=20)
