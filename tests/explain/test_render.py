"""Study-wide normalisation, PNG overlays and npy bytes of saliency maps."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from explain.render import (
    MapNormaliser,
    map_to_npy_bytes,
    npy_bytes_to_map,
    render_overlay,
    study_normaliser,
)


def photo(height: int = 24, width: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def decode(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png))


def test_png_has_the_image_size_and_rgb_mode() -> None:
    image = photo()
    saliency = np.random.default_rng(1).random((6, 8))  # smaller: resized bilinearly
    out = decode(render_overlay(image, saliency, vmin=0.0, vmax=1.0))
    assert out.size == (32, 24)
    assert out.mode == "RGB"
    out_pil = decode(render_overlay(Image.fromarray(image).convert("L"), saliency, vmin=0, vmax=1))
    assert out_pil.size == (32, 24)


def test_zero_saliency_leaves_the_image_and_vmax_shows_the_top_colour() -> None:
    image = photo()
    saliency = np.zeros((24, 32))
    saliency[:, 16:] = 2.0  # right half at vmax
    out = np.asarray(decode(render_overlay(image, saliency, vmin=0.0, vmax=2.0, alpha=0.6)))
    np.testing.assert_array_equal(out[:, :16], image[:, :16])
    top = np.array(matplotlib.colormaps["inferno"](1.0)[:3]) * 255
    expected = 0.4 * image[:, 16:] + 0.6 * top
    assert np.abs(out[:, 16:].astype(float) - expected).max() <= 0.5 + 1e-9


def test_the_same_normaliser_gives_equal_colours_for_equal_values() -> None:
    first = np.random.default_rng(2).random((24, 32)) * 3
    second = np.random.default_rng(3).random((24, 32))
    vmin, vmax = study_normaliser([first, second])
    second[5, 7] = first[5, 7]
    grey = np.full((24, 32, 3), 128, dtype=np.uint8)
    a = np.asarray(decode(render_overlay(grey, first, vmin=vmin, vmax=vmax)))
    b = np.asarray(decode(render_overlay(grey, second, vmin=vmin, vmax=vmax)))
    np.testing.assert_array_equal(a[5, 7], b[5, 7])


def test_study_normaliser_is_zero_to_the_99th_percentile() -> None:
    values = np.arange(1001, dtype=float)
    assert study_normaliser([values[:500], values[500:].reshape(1, -1)]) == (0.0, 990.0)
    assert study_normaliser(np.array([0.0, 0.0, 4.0]), percentile=50) == (0.0, 4.0)
    assert study_normaliser([np.zeros((2, 2))]) == (0.0, 1.0)
    normaliser = MapNormaliser.for_study([values])
    np.testing.assert_array_equal(normaliser(np.array([-1.0, 495.0, 2000.0])), [0.0, 0.5, 1.0])


@pytest.mark.parametrize(("vmin", "vmax"), [(0.0, 0.0), (1.0, 0.5), (0.0, float("nan"))])
def test_an_empty_or_inverted_range_is_refused(vmin: float, vmax: float) -> None:
    with pytest.raises(ValueError, match="vm"):
        render_overlay(photo(), np.zeros((4, 4)), vmin=vmin, vmax=vmax)
    with pytest.raises(ValueError, match="vm"):
        MapNormaliser(vmin, vmax)


@pytest.mark.parametrize(
    ("image", "saliency", "message"),
    [
        (photo(), np.zeros((4, 4, 1)), "saliency map"),
        (photo(), np.zeros((0, 4)), "saliency map"),
        (photo(), np.full((4, 4), np.inf), "infinite"),
        (photo()[..., :2], np.zeros((4, 4)), "image array"),
        (photo().astype(np.float32), np.zeros((4, 4)), "image array"),
        ([[1, 2, 3]], np.zeros((4, 4)), "image must be"),
    ],
)
def test_bad_shapes_are_refused(image: object, saliency: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_overlay(image, saliency, vmin=0.0, vmax=1.0)


def test_bad_alpha_colormap_and_study_values_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        render_overlay(photo(), np.zeros((4, 4)), vmin=0, vmax=1, alpha=1.5)
    with pytest.raises(ValueError, match="colormap"):
        render_overlay(photo(), np.zeros((4, 4)), vmin=0, vmax=1, colormap="no-such-map")
    with pytest.raises(ValueError, match="at least one"):
        study_normaliser([])
    with pytest.raises(ValueError, match="infinite"):
        study_normaliser([np.array([1.0, np.nan])])


def test_npy_round_trip_keeps_the_float16_values() -> None:
    saliency = np.random.default_rng(4).random((7, 9)).astype(np.float32)
    data = map_to_npy_bytes(saliency)
    assert np.load(io.BytesIO(data)).dtype == np.float16
    back = npy_bytes_to_map(data)
    assert back.shape == (7, 9)
    np.testing.assert_array_equal(back, saliency.astype(np.float16).astype(np.float32))


def test_npy_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="saliency map"):
        map_to_npy_bytes(np.zeros(5))
    with pytest.raises(ValueError, match="float16"):
        map_to_npy_bytes(np.full((2, 2), 1e6))
    with pytest.raises(ValueError, match="npy"):
        npy_bytes_to_map(b"not an npy file")
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3, dtype=np.float16))
    with pytest.raises(ValueError, match="2-D"):
        npy_bytes_to_map(buffer.getvalue())
