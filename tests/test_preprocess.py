"""The per-image preprocessings (fgssl.data.retina, fgssl.data.color_constancy,
fgssl.data.preprocess) against hand computations on synthetic images whose field of view,
radius and colour cast are known, and on the real photographs."""

from __future__ import annotations

import logging
import math
import pickle

import numpy as np
import pytest

from fgssl.data.color_constancy import illuminant, shades_of_gray
from fgssl.data.io import read_rgb
from fgssl.data.preprocess import (
    ImageReader,
    Preprocessing,
    default_radius,
    make_preprocessing,
    preprocessing_of,
)
from fgssl.data.retina import (
    ben_graham,
    crop_to_retina,
    field_of_view,
    subtract_local_average,
)
from fgssl.errors import ConfigError
from realdata_layouts import require_realdata

COLOUR = (200, 100, 50)


def disc(height: int, width: int, cy: float, cx: float, radius: float) -> np.ndarray:
    """A black (height, width, 3) image with a disc of :data:`COLOUR`: the pixels whose
    centre (y + 0.5, x + 0.5) lies within ``radius`` of (cy, cx)."""
    y, x = np.ogrid[:height, :width]
    inside = (y + 0.5 - cy) ** 2 + (x + 0.5 - cx) ** 2 <= radius**2
    image = np.zeros((height, width, 3), np.uint8)
    image[inside] = COLOUR
    return image


def test_field_of_view_of_a_disc_is_its_bounding_box() -> None:
    """Disc centre (150, 210), radius 100: its pixels are rows 50..249 and columns
    110..309 ((y + 0.5 - 150)^2 <= 100^2 gives 49.5 <= y <= 249.5); border noise of 3 grey
    levels and a bright speck in a corner (another region) do not count."""
    image = disc(300, 400, 150, 210, 100)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 4, image.shape[:2], dtype=np.uint8)
    image[image.sum(axis=2) == 0] = noise[image.sum(axis=2) == 0, None]
    image[2:5, 380:383] = 255
    assert field_of_view(image) == (50, 250, 110, 310)


def test_field_of_view_found_on_the_downsized_image() -> None:
    """A 1200 x 1600 photograph is searched at 384 x 512 (factor 3.125): the box is within
    one downsized pixel (4 px) of the disc's, rows 100..1099, columns 300..1299."""
    box = field_of_view(disc(1200, 1600, 600, 800, 500))
    assert box is not None
    for got, expected in zip(box, (100, 1100, 300, 1300), strict=True):
        assert abs(got - expected) <= 4


def test_field_of_view_without_a_dark_border_or_anything_bright() -> None:
    bright = np.full((60, 80, 3), 120, np.uint8)
    bright[20:30, 20:30] = 10  # a dark spot inside a bright image is no border
    assert field_of_view(bright) == (0, 60, 0, 80)
    assert field_of_view(np.zeros((60, 80, 3), np.uint8)) is None


def test_crop_to_retina_scales_the_radius_and_centres_it() -> None:
    """Radius 100 -> 64 on a 128 px square: the pixels whose centre lies within 63 px of
    the square's centre are the disc's colour, those beyond 65 px black (the area
    interpolation mixes the 2 px between)."""
    out = crop_to_retina(disc(300, 400, 150, 210, 100), 64)
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8
    y, x = np.ogrid[:128, :128]
    distance = np.sqrt((y + 0.5 - 64) ** 2 + (x + 0.5 - 64) ** 2)
    assert (out[distance <= 63] == COLOUR).all()
    assert (out[distance >= 65] == 0).all()


def test_a_clipped_retina_keeps_its_radius_from_the_width() -> None:
    """A disc of radius 100 clipped to 160 rows (as fundus cameras do): the radius comes
    from the width (200 px), the 160 rows become round(160 * 0.64) = 102 rows, centred at
    rows 13..114 of the 128 px square; the rows above and below are black."""
    clipped = disc(300, 400, 150, 210, 100)[70:230]
    assert field_of_view(clipped) == (0, 160, 110, 310)
    out = crop_to_retina(clipped, 64)
    lit = np.flatnonzero(out[:, 64].max(axis=1) > 0)
    assert (lit[0], lit[-1]) == (13, 114)


def test_crop_to_retina_is_idempotent() -> None:
    once = crop_to_retina(disc(300, 400, 150, 210, 100), 64)
    assert np.array_equal(crop_to_retina(once, 64), once)


def test_ben_graham_makes_a_uniform_retina_all_grey() -> None:
    """4c - 4 blur(c) + 128 = 128 wherever the blur sees only the retina's colour c; the
    blur (sigma = R/30, cut at 3 sigma = 0.1 R) of a pixel within the 0.9 R mask reaches at
    most R, the retina's edge; beyond the mask everything is 128: the whole image is 128."""
    out = ben_graham(disc(300, 400, 150, 210, 100), 60)
    assert out.shape == (120, 120, 3)
    assert (out == 128).all()
    with_spot = disc(300, 400, 150, 210, 100)
    with_spot[146:154, 206:214] = (250, 150, 100)  # a small lesion 50 levels brighter
    spotted = ben_graham(with_spot, 60).astype(int)
    centre = spotted[60, 60]  # 128 + 4 (50 - its blurred share): above 128 + 50, grey
    assert centre.min() == centre.max() > 178 and spotted.min() < 128  # and a darker halo


def test_subtract_local_average_against_the_gaussian_response() -> None:
    """A Gaussian of std sigma passes a sinusoid of wavelength L damped by
    exp(-2 pi^2 sigma^2 / L^2), so 4 (I - blur I) + 128 is 128 + 4 A (1 - that) sin(...):
    with R = 150 (sigma 5), L = 20, A = 30: amplitude 85.0."""
    radius, wavelength, amplitude = 150, 20.0, 30.0
    x = np.arange(2 * radius)
    wave = np.sin(2 * np.pi * x / wavelength)
    row = np.rint(128 + amplitude * wave).astype(np.uint8)
    image = np.repeat(np.tile(row, (2 * radius, 1))[..., None], 3, axis=2)
    out = subtract_local_average(image, radius).astype(float)
    sigma = radius / 30
    gain = 4 * (1 - math.exp(-2 * math.pi**2 * sigma**2 / wavelength**2))
    assert gain * amplitude == pytest.approx(85.0, abs=0.1)
    # the blur averages the input's rounding away: 4 I_rounded - 4 (128 + damped wave) + 128
    expected = 4.0 * row - 4 * (128 + (1 - gain / 4) * amplitude * wave) + 128
    assert np.abs(expected - (128 + gain * amplitude * wave)).max() <= 2  # rounding x 4
    centre = slice(radius - 60, radius + 60)  # the blur is 8-bit: +-0.5 x 4, result +-0.5
    assert np.abs(out[centre, centre, 1] - expected[centre]).max() <= 2.5


def test_shades_of_gray_of_a_uniform_colour_is_its_norm_over_root_3() -> None:
    """e = (200, 150, 100), |e| = sqrt(72500) = 269.26: every channel becomes
    |e| / sqrt(3) = 155.46, rounded 155."""
    image = np.zeros((10, 12, 3), np.uint8)
    image[:] = (200, 150, 100)
    assert illuminant(image) == pytest.approx([200, 150, 100])
    assert (shades_of_gray(image) == 155).all()


def test_shades_of_gray_makes_a_colour_cast_grey_patch_neutral() -> None:
    rng = np.random.default_rng(1)
    grey = rng.uniform(40, 200, (64, 64))
    cast = np.array([1.15, 1.0, 0.7])
    image = np.rint(grey[..., None] * cast).astype(np.uint8)
    estimate = illuminant(image)
    direct = np.mean(image.astype(np.float64) ** 6, axis=(0, 1)) ** (1 / 6)
    np.testing.assert_allclose(estimate, direct, rtol=1e-9)  # the histogram form is exact
    out = shades_of_gray(image)
    corrected = illuminant(out)
    assert np.ptp(corrected) < 0.6  # neutral to the p-norm estimate
    assert np.linalg.norm(corrected) == pytest.approx(np.linalg.norm(estimate), abs=0.6)
    spread = out.astype(int).max(axis=2) - out.astype(int).min(axis=2)
    assert spread.max() <= 2  # grey again, but for the rounding of the cast and of the gains
    assert np.abs(shades_of_gray(out).astype(int) - out).max() <= 1  # idempotent


def test_shades_of_gray_leaves_an_image_with_a_black_channel(
    caplog: pytest.LogCaptureFixture,
) -> None:
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 180
    with caplog.at_level(logging.WARNING):
        assert np.array_equal(shades_of_gray(red, source="red.png"), red)
    assert "red.png" in caplog.text and "black colour channel" in caplog.text


def test_the_options_and_their_refusals() -> None:
    assert make_preprocessing(None, image_size=224) is None
    assert make_preprocessing("ben_graham", image_size=224) == Preprocessing("ben_graham", 224)
    assert make_preprocessing("fundus_crop", 300, image_size=224).radius == 300
    assert make_preprocessing("shades_of_gray", image_size=224) == Preprocessing("shades_of_gray")
    assert default_radius(224) == 224 and default_radius(96, 250) == 125
    bad = [
        (("clahe", None), r"data\.preprocess must be null or one of .*'clahe'"),
        ((None, 300), r"data\.preprocess_radius=300 applies to .* data\.preprocess is null"),
        (("shades_of_gray", 300), r"not to shades_of_gray"),
        (("ben_graham", 4), r"data\.preprocess_radius must be null or .* >= 8, got 4"),
        (("ben_graham", 100.5), r"got 100\.5"),
    ]
    for (name, radius), message in bad:
        with pytest.raises(ConfigError, match=message):
            make_preprocessing(name, radius, image_size=224)
    data = {"image_size": 32, "resize_size": 36, "preprocess": "ben_graham"}
    assert preprocessing_of(data) == Preprocessing("ben_graham", 32)
    assert preprocessing_of({"image_size": 32}) is None


def test_the_json_form_round_trips_and_refuses_what_it_cannot_compute() -> None:
    for kept in [Preprocessing("ben_graham", 224), Preprocessing("shades_of_gray")]:
        assert Preprocessing.from_dict(kept.to_dict(), source="x") == kept
    assert Preprocessing("shades_of_gray").to_dict() == {
        "name": "shades_of_gray",
        "version": 1,
        "power": 6,
    }
    assert Preprocessing.from_dict(None, source="x") is None
    for tree in [
        {"name": "ben_graham", "version": 2, "radius": 224},
        {"name": "ben_graham", "version": 1},
        {"name": "clahe", "version": 1},
        "ben_graham",
    ]:
        with pytest.raises(ConfigError, match=r"model\.preprocessing\.json"):
            Preprocessing.from_dict(tree, source="model.preprocessing.json")  # type: ignore[arg-type]


def test_the_reader_applies_the_preprocessing_and_pickles(tmp_path) -> None:
    import cv2

    path = tmp_path / "eye.png"
    cv2.imwrite(str(path), disc(300, 400, 150, 210, 100)[..., ::-1])
    reader = pickle.loads(pickle.dumps(ImageReader(None, Preprocessing("ben_graham", 32))))
    assert np.array_equal(reader(path), ben_graham(read_rgb(path), 32))
    assert np.array_equal(ImageReader()(path), read_rgb(path))


def test_the_real_photographs() -> None:
    """DRIVE's field of view is a circle about 540 px across (Staal et al. 2004); the
    under-exposed capture is clipped at the top and bottom (its radius from the width); the
    grey crop inside a retina has no border; HAM10000 images come out neutral."""
    root = require_realdata()
    for name in ["DRIVE_22.png", "DRIVE_40.png"]:
        top, bottom, left, right = field_of_view(read_rgb(root / "fundus" / name)) or (0,) * 4
        assert abs((bottom - top) - 540) <= 6 and abs((right - left) - 540) <= 6
    dark = read_rgb(root / "fundus" / "sample_dark.png")
    top, bottom, left, right = field_of_view(dark) or (0,) * 4
    assert right - left > bottom - top > 0.8 * dark.shape[0]
    assert ben_graham(dark, 112).shape == (224, 224, 3)
    grey = read_rgb(root / "fundus" / "skimage_microaneurysms_gray.png")
    assert field_of_view(grey) == (0, 102, 0, 102)
    folder = root / "ham10000-200x150" / "HAM10000_images_part_1"
    if not folder.is_dir():
        pytest.skip(f"no HAM10000 images at {str(folder)!r}")
    for path in sorted(folder.glob("*.jpg"))[:5]:
        assert np.ptp(illuminant(shades_of_gray(read_rgb(path)))) < 1.0
