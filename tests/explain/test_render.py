"""Overlay styles (the papers' look by default), study-wide normalisation, PNG overlays, the
colour bar and npy bytes of saliency maps."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from explain.render import (
    MapNormaliser,
    OverlayStyle,
    colorbar_gradient_css,
    map_range,
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


def test_the_default_tints_every_pixel_at_one_opacity_cool_to_warm() -> None:
    image = photo()
    saliency = np.zeros((24, 32))
    saliency[:, 16:] = 2.0  # right half at vmax
    out = np.asarray(decode(render_overlay(image, saliency, vmin=0.0, vmax=2.0))).astype(float)
    jet = matplotlib.colormaps["jet"]
    cool = 0.5 * image[:, :16] + 0.5 * np.array(jet(0.0)[:3]) * 255
    warm = 0.5 * image[:, 16:] + 0.5 * np.array(jet(1.0)[:3]) * 255
    assert np.abs(out[:, :16] - cool).max() <= 0.5 + 1e-9
    assert np.abs(out[:, 16:] - warm).max() <= 0.5 + 1e-9
    # the whole result is tinted, the low half too: nowhere is a grey image left grey
    grey = np.full((24, 32, 3), 128, dtype=np.uint8)
    tinted = np.asarray(decode(render_overlay(grey, saliency, vmin=0.0, vmax=2.0))).astype(float)
    assert (np.abs(tinted - grey).mean(axis=2) > 20).all()


def test_ramp_blend_leaves_zero_saliency_bare_and_shows_the_top_colour_at_vmax() -> None:
    image = photo()
    saliency = np.zeros((24, 32))
    saliency[:, 16:] = 2.0  # right half at vmax
    out = np.asarray(
        decode(
            render_overlay(
                image, saliency, vmin=0.0, vmax=2.0, alpha=0.6, colormap="inferno", blend="ramp"
            )
        )
    )
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


def test_a_map_on_its_own_scale_spans_the_whole_colormap() -> None:
    weak = np.linspace(0.0, 0.01, 24 * 32).reshape(24, 32)
    strong = weak * 1000
    grey = np.full((24, 32, 3), 128, dtype=np.uint8)
    style = OverlayStyle()
    weak_png, weak_drawn = style.render(grey, weak)
    strong_png, strong_drawn = style.render(grey, strong)
    # per map: the weak map is drawn as hot as the strong one, its own min..max
    np.testing.assert_array_equal(np.asarray(decode(weak_png)), np.asarray(decode(strong_png)))
    assert (weak_drawn["vmin"], weak_drawn["vmax"]) == pytest.approx((0.0, 0.01))
    assert strong_drawn["scale"] == "map"
    assert strong_drawn["colormap"] == "jet"
    assert map_range(np.full((3, 3), 2.0)) == (2.0, 3.0)  # flat: all at the cool end
    # per study: the weak map stays cool against the study's range
    study = OverlayStyle(scale="study")
    study_png, drawn = study.render(grey, weak, (0.0, 10.0))
    assert (drawn["vmin"], drawn["vmax"]) == (0.0, 10.0)
    assert not np.array_equal(np.asarray(decode(study_png)), np.asarray(decode(weak_png)))
    with pytest.raises(ValueError, match="study's"):
        study.render(grey, weak)


def test_a_style_round_trips_its_config_and_names_bad_settings() -> None:
    style = OverlayStyle(colormap="inferno", alpha=0.7, scale="study", blend="ramp")
    assert OverlayStyle(**style.get_config()) == style
    assert OverlayStyle.from_config({"scale": "study"}) == OverlayStyle(scale="study")
    assert OverlayStyle.from_config(None) == OverlayStyle()
    for config, name in [
        ({"scale": "image"}, "scale"),
        ({"alpha": 0}, "alpha"),
        ({"alpha": True}, "alpha"),
        ({"blend": "screen"}, "blend"),
        ({"colormap": "nope"}, "colormap"),
        ({"percentile": 0}, "percentile"),
        ({"opacity": 0.5}, "opacity"),
    ]:
        with pytest.raises(ValueError, match=name):
            OverlayStyle.from_config(config)


def test_the_colour_bar_runs_from_the_colormaps_low_to_its_high_colour() -> None:
    css = colorbar_gradient_css("jet", stops=3)
    low, high = (np.array(matplotlib.colormaps["jet"](t)[:3]) * 255 for t in (0.0, 1.0))
    assert css.startswith("linear-gradient(to right, ")
    assert f"rgb({round(low[0])}, {round(low[1])}, {round(low[2])}) 0%" in css
    assert f"rgb({round(high[0])}, {round(high[1])}, {round(high[2])}) 100%" in css
    assert css.count("rgb(") == 3
    with pytest.raises(ValueError, match="2 stops"):
        colorbar_gradient_css("jet", stops=1)


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
    with pytest.raises(ValueError, match="blend"):
        render_overlay(photo(), np.zeros((4, 4)), vmin=0, vmax=1, blend="screen")
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
