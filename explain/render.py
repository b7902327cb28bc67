"""Saliency maps as workers see them: overlay styles, PNG overlays, a colour bar, npy bytes.

The papers' look (default)
--------------------------
Seed 000 (Fig. 2, 3, 5) and seed 001 (Fig. 3) show each SBSM as a heat map laid over the whole
result: "hotter" regions contribute more to the match with the query, cooler ones less. The
default :class:`OverlayStyle` draws that way::

    t       = clip((value - vmin) / (vmax - vmin), 0, 1)        per pixel, in [0, 1]
    colour  = colormap(t)                                       "jet": blue (t=0) .. red (t=1)
    pixel   = (1 - alpha) * image + alpha * colour              one opacity for every pixel

and with ``scale="map"`` each map spans the whole colormap, ``vmin``/``vmax`` its own minimum
and maximum (as the papers' figures, where each result has a hot and a cool end). A flat map
(maximum equal to minimum) is drawn at ``t = 0`` all over: cool, nothing matters more.

``scale="study"`` instead shares one range across every map of a study, ``vmin = 0`` (SBSM maps
are >= 0) and ``vmax`` the 99th percentile of the maps' maxima (:func:`study_normaliser`), so a
colour means the same saliency on every result a worker compares; a weak result then stays
cool all over. ``blend="ramp"`` makes the opacity ``alpha * t`` (the colour fades out where
the map is low), the platform's former rendering, which leaves most of a result untinted.

Every overlay's style and range travel together (:meth:`OverlayStyle.get_config` plus
``vmin``/``vmax``), stored beside the overlay, so the analysis knows what each worker saw and
a re-rendering needs only the stored raw map.

No Django and no pyplot here (STYLE habit 9; the colormap registry needs no backend).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import matplotlib
import numpy as np
from numpy.typing import ArrayLike
from PIL import Image

__all__ = [
    "MapNormaliser",
    "OverlayStyle",
    "colorbar_gradient_css",
    "map_range",
    "map_to_npy_bytes",
    "npy_bytes_to_map",
    "render_overlay",
    "study_normaliser",
]

_FLOAT16_MAX = float(np.finfo(np.float16).max)
_SCALES = ("map", "study")
_BLENDS = ("fixed", "ramp")


def _colormap(name: str):
    try:
        return matplotlib.colormaps[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown colormap {name!r}") from None


@dataclass(frozen=True)
class OverlayStyle:
    """How a saliency map is drawn over its result (module docstring).

    Parameters
    ----------
    colormap : str, default "jet"
        A name in ``matplotlib.colormaps``; "jet" is the papers' blue-to-red heat map.
    alpha : float in (0, 1], default 0.5
        Opacity of the colour: everywhere with ``blend="fixed"``, where ``t = 1`` with "ramp".
    scale : {"map", "study"}, default "map"
        The range of each map on its own (the papers' figures) or one range for the study.
    blend : {"fixed", "ramp"}, default "fixed"
        One opacity over the whole result, or an opacity growing with the value.
    percentile : float in (0, 100], default 99.0
        With ``scale="study"``: the percentile of the maps' maxima drawn at full colour.

    Raises
    ------
    ValueError
        Any parameter out of range, named in the message.
    """

    colormap: str = "jet"
    alpha: float = 0.5
    scale: str = "map"
    blend: str = "fixed"
    percentile: float = 99.0

    def __post_init__(self) -> None:
        _colormap(self.colormap)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float):
            raise ValueError(f"overlay alpha must be a number in (0, 1], got {self.alpha!r}")
        if not 0.0 < float(self.alpha) <= 1.0:
            raise ValueError(f"overlay alpha must be in (0, 1], got {self.alpha!r}")
        if self.scale not in _SCALES:
            raise ValueError(f"overlay scale must be one of {_SCALES}, got {self.scale!r}")
        if self.blend not in _BLENDS:
            raise ValueError(f"overlay blend must be one of {_BLENDS}, got {self.blend!r}")
        if isinstance(self.percentile, bool) or not isinstance(self.percentile, int | float):
            raise ValueError(f"overlay percentile must be a number, got {self.percentile!r}")
        if not 0.0 < float(self.percentile) <= 100.0:
            raise ValueError(f"overlay percentile must be in (0, 100], got {self.percentile!r}")
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "percentile", float(self.percentile))

    def get_config(self) -> dict[str, Any]:
        """The style as a JSON-able dict; ``OverlayStyle(**style.get_config()) == style``."""
        return asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> OverlayStyle:
        """The style of a (possibly partial) config; missing keys take the defaults.

        ValueError names an unknown key or a bad value.
        """
        config = dict(config or {})
        unknown = sorted(set(config) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"unknown overlay setting(s) {unknown}; known: {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**config)

    def range_of(
        self, saliency: ArrayLike, study_range: tuple[float, float] | None = None
    ) -> tuple[float, float]:
        """``(vmin, vmax)`` to draw ``saliency`` with: its own range, or ``study_range``.

        ValueError when the scale is "study" and no ``study_range`` is given.
        """
        if self.scale == "map":
            return map_range(saliency)
        if study_range is None:
            raise ValueError("an overlay at the study's scale needs the study's (vmin, vmax)")
        return _check_range(*study_range)

    def render(
        self,
        image: Image.Image | np.ndarray,
        saliency: ArrayLike,
        study_range: tuple[float, float] | None = None,
    ) -> tuple[bytes, dict[str, Any]]:
        """The overlay PNG and the config it was drawn with (the style plus ``vmin``/``vmax``)."""
        vmin, vmax = self.range_of(saliency, study_range)
        png = render_overlay(
            image,
            saliency,
            vmin=vmin,
            vmax=vmax,
            alpha=self.alpha,
            colormap=self.colormap,
            blend=self.blend,
        )
        return png, {**self.get_config(), "vmin": vmin, "vmax": vmax}


def _check_map(saliency: ArrayLike) -> np.ndarray:
    values = np.asarray(saliency)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"a saliency map must be a non-empty (h, w) array, got {values.shape}")
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        raise ValueError(f"a saliency map must be numeric, got {values.dtype}")
    values = values.astype(np.float32)
    if not np.isfinite(values).all():
        raise ValueError("the saliency map holds NaN or infinite values")
    return values


def _check_range(vmin: float, vmax: float) -> tuple[float, float]:
    vmin, vmax = float(vmin), float(vmax)
    if not (math.isfinite(vmin) and math.isfinite(vmax)):
        raise ValueError(f"vmin and vmax must be finite, got {vmin!r}, {vmax!r}")
    if vmax <= vmin:
        raise ValueError(f"vmax ({vmax}) must be greater than vmin ({vmin})")
    return vmin, vmax


@dataclass(frozen=True)
class MapNormaliser:
    """The scaling ``t = clip((value - vmin) / (vmax - vmin), 0, 1)`` shared by a study.

    Parameters
    ----------
    vmin, vmax : float
        Finite, ``vmax > vmin``; in the maps' units (SBSM: distance increase).
    """

    vmin: float
    vmax: float

    def __post_init__(self) -> None:
        vmin, vmax = _check_range(self.vmin, self.vmax)
        object.__setattr__(self, "vmin", vmin)
        object.__setattr__(self, "vmax", vmax)

    @classmethod
    def for_study(
        cls, maps_or_values: ArrayLike | Iterable[ArrayLike], *, percentile: float = 99.0
    ) -> MapNormaliser:
        """The normaliser of a study; see :func:`study_normaliser`."""
        return cls(*study_normaliser(maps_or_values, percentile=percentile))

    def __call__(self, saliency: ArrayLike) -> np.ndarray:
        """``t`` for every value: same shape as ``saliency``, float32 in [0, 1]."""
        values = np.asarray(saliency, dtype=np.float64)
        scaled = (values - self.vmin) / (self.vmax - self.vmin)
        return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def study_normaliser(
    maps_or_max_values: ArrayLike | Iterable[ArrayLike], *, percentile: float = 99.0
) -> tuple[float, float]:
    """``(vmin, vmax)`` shared by every map of a study (see the module docstring).

    Parameters
    ----------
    maps_or_max_values : array-like, or iterable of array-likes
        Every map of the study (arrays of any shapes, flattened together), or, when keeping
        all maps in memory is too costly, one value per map such as its maximum; ``vmax`` is
        then the percentile of those values instead of all pixels.
    percentile : float, default 99.0
        In (0, 100].

    Returns
    -------
    (vmin, vmax) : tuple of float
        ``vmin = 0``; ``vmax`` the percentile, or the maximum if the percentile is 0, or 1 if
        all values are 0. Always ``vmax > vmin``.

    Raises
    ------
    ValueError
        No values, non-finite values, or ``percentile`` out of range.
    """
    if not (isinstance(percentile, int | float) and 0 < percentile <= 100):
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}")
    if isinstance(maps_or_max_values, np.ndarray | int | float):
        parts = [np.asarray(maps_or_max_values, dtype=np.float64).ravel()]
    else:
        parts = [np.asarray(part, dtype=np.float64).ravel() for part in maps_or_max_values]
    values = np.concatenate(parts) if parts else np.empty(0)
    if values.size == 0:
        raise ValueError("a study normaliser needs at least one map value")
    if not np.isfinite(values).all():
        raise ValueError("the study's maps hold NaN or infinite values")
    vmin = 0.0
    vmax = float(np.percentile(values, percentile))
    if vmax <= vmin:
        vmax = float(values.max())
    if vmax <= vmin:
        vmax = 1.0
    return vmin, vmax


def map_range(saliency: ArrayLike) -> tuple[float, float]:
    """``(vmin, vmax)`` of one map on its own scale: its minimum and maximum.

    A flat map gets ``(value, value + 1)``, so it draws at ``t = 0`` everywhere.
    ValueError for a map that is not a finite, non-empty (h, w) array.
    """
    values = _check_map(saliency)
    vmin, vmax = float(values.min()), float(values.max())
    if vmax <= vmin:
        vmax = vmin + 1.0
    return vmin, vmax


def _image_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
            raise ValueError(
                f"an image array must be (H, W, 3) uint8, got {image.shape} {image.dtype}"
            )
        return image
    raise ValueError(f"image must be a PIL image or an ndarray, got {type(image).__name__}")


def render_overlay(
    image: Image.Image | np.ndarray,
    saliency: ArrayLike,
    *,
    vmin: float,
    vmax: float,
    alpha: float = 0.5,
    colormap: str = "jet",
    blend: str = "fixed",
) -> bytes:
    """The saliency map drawn over its image, as PNG bytes (module docstring).

    Parameters
    ----------
    image : PIL image (any mode, converted to RGB) or ndarray of shape (H, W, 3), uint8
        The result image as shown to workers.
    saliency : array-like of shape (h, w), finite
        The map; resized bilinearly to (H, W) when its size differs.
    vmin, vmax : float
        The range drawn from the colormap's first to its last colour, ``vmax > vmin``
        (:func:`map_range` or :func:`study_normaliser`).
    alpha : float in [0, 1], default 0.5
        Opacity of the colour: on every pixel (``blend="fixed"``) or where ``t = 1``
        (``blend="ramp"``, falling linearly to 0 at ``t = 0``).
    colormap : str, default "jet"
        A name in ``matplotlib.colormaps``.
    blend : {"fixed", "ramp"}, default "fixed"

    Returns
    -------
    bytes
        A PNG of size (W, H), mode RGB.

    Raises
    ------
    ValueError
        Bad image or map shape, non-finite values, ``vmax <= vmin``, ``alpha`` outside
        [0, 1], an unknown colormap or blend.
    """
    pixels = _image_array(image)
    values = _check_map(saliency)
    normaliser = MapNormaliser(vmin, vmax)
    if isinstance(alpha, bool) or not (isinstance(alpha, int | float) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if blend not in _BLENDS:
        raise ValueError(f"blend must be one of {_BLENDS}, got {blend!r}")
    cmap = _colormap(colormap)
    height, width = pixels.shape[:2]
    if values.shape != (height, width):
        # Resize the raw values, then normalise: clipping after interpolation keeps the
        # saturated regions' edges where the values cross vmax.
        values = np.asarray(
            Image.fromarray(np.ascontiguousarray(values)).resize(
                (width, height), Image.Resampling.BILINEAR
            )
        )
    t = normaliser(values)
    colours = cmap(t)[..., :3] * 255.0  # (H, W, 3) in [0, 255]
    opacity = np.float32(alpha) if blend == "fixed" else (float(alpha) * t)[..., None]
    blended = pixels * (1.0 - opacity) + colours * opacity
    out = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(out).save(buffer, format="PNG")
    return buffer.getvalue()


def colorbar_gradient_css(colormap: str = "jet", *, stops: int = 11) -> str:
    """A CSS ``linear-gradient`` from the colormap's low end (left) to its high end (right).

    What a page's colour bar draws beside the overlays, so that "warm = matters more to the
    match" is read off the same colours. ``stops`` evenly spaced colours, >= 2.
    ValueError for an unknown colormap or fewer than two stops.
    """
    if isinstance(stops, bool) or not isinstance(stops, int) or stops < 2:
        raise ValueError(f"a colour bar needs at least 2 stops, got {stops!r}")
    cmap = _colormap(colormap)
    parts = []
    for i, t in enumerate(np.linspace(0.0, 1.0, stops)):
        red, green, blue = (round(c * 255) for c in cmap(float(t))[:3])
        parts.append(f"rgb({red}, {green}, {blue}) {round(100 * i / (stops - 1))}%")
    return "linear-gradient(to right, " + ", ".join(parts) + ")"


def map_to_npy_bytes(saliency: ArrayLike) -> bytes:
    """A map as the bytes of a float16 ``.npy`` file (half the size of float32).

    Raises ValueError for a non-2-D, non-finite map or values beyond float16's range.
    """
    values = _check_map(saliency)
    if np.abs(values).max() > _FLOAT16_MAX:
        raise ValueError(f"the map holds values beyond float16's range (|x| > {_FLOAT16_MAX})")
    buffer = io.BytesIO()
    np.save(buffer, values.astype(np.float16), allow_pickle=False)
    return buffer.getvalue()


def npy_bytes_to_map(data: bytes) -> np.ndarray:
    """The map of :func:`map_to_npy_bytes`: shape (h, w), float32 holding the float16 values.

    Raises ValueError if ``data`` is not a ``.npy`` of a 2-D float array.
    """
    try:
        values = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"not the bytes of a .npy map: {error}") from None
    if not isinstance(values, np.ndarray) or values.ndim != 2:
        raise ValueError(f"a stored map must be 2-D, got {getattr(values, 'shape', None)}")
    if not np.issubdtype(values.dtype, np.floating):
        raise ValueError(f"a stored map must be floating, got {values.dtype}")
    return values.astype(np.float32)
