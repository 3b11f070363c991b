"""Decoding every kind of image file into RGB, and finding unreadable files before training."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fgssl.data import FolderDataModule, read_rgb
from fgssl.data.verify import find_unreadable, screen_image
from fgssl.errors import ImageReadError
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
