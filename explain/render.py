"""Saliency maps as workers see them: one normalisation per study, PNG overlays, npy bytes.

Normalisation
-------------
Every map of a study goes through the same affine scaling, so a colour means the same saliency
on every result a worker compares (a per-map max would paint the strongest region of a weak
result as hot as that of a strong one)::

    vmin = 0                                    (SBSM maps are >= 0; 0 = "no effect")
    vmax = 99th percentile of all map values of the study
    t    = clip((value - vmin) / (vmax - vmin), 0, 1)

The percentile rather than the maximum keeps a few extreme pixels from washing every other map
out; the top 1 % saturate. If the percentile is 0 (almost all values 0) the maximum is used, and
if that is 0 too the range is (0, 1), so every map renders as the bare image.

Overlay
-------
The map, resized bilinearly to the image, is coloured by a perceptually uniform matplotlib
colormap (inferno by default) and blended over the image with a per-pixel opacity
``alpha * t``: where ``t = 0`` the pixel is exactly the image's, where ``t = 1`` it is
``(1 - alpha) * image + alpha * top colour``.

No Django and no pyplot here (STYLE habit 9; the colormap registry needs no backend).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass

import matplotlib
import numpy as np
from numpy.typing import ArrayLike
from PIL import Image

__all__ = [
    "MapNormaliser",
    "map_to_npy_bytes",
    "npy_bytes_to_map",
    "render_overlay",
    "study_normaliser",
]

_FLOAT16_MAX = float(np.finfo(np.float16).max)


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
    colormap: str = "inferno",
) -> bytes:
    """The saliency map blended over its image, as PNG bytes.

    Parameters
    ----------
    image : PIL image (any mode, converted to RGB) or ndarray of shape (H, W, 3), uint8
        The result image as shown to workers.
    saliency : array-like of shape (h, w), finite
        The map; resized bilinearly to (H, W) when its size differs.
    vmin, vmax : float
        The study's normalisation (:func:`study_normaliser`), ``vmax > vmin``.
    alpha : float in [0, 1], default 0.5
        Opacity of the colour where the normalised value is 1; it falls linearly to 0.
    colormap : str, default "inferno"
        A name in ``matplotlib.colormaps``; pick a perceptually uniform one.

    Returns
    -------
    bytes
        A PNG of size (W, H), mode RGB.

    Raises
    ------
    ValueError
        Bad image or map shape, non-finite values, ``vmax <= vmin``, ``alpha`` outside
        [0, 1] or an unknown colormap.
    """
    pixels = _image_array(image)
    values = _check_map(saliency)
    normaliser = MapNormaliser(vmin, vmax)
    if not (isinstance(alpha, int | float) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError:
        raise ValueError(f"unknown colormap {colormap!r}") from None
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
    opacity = (float(alpha) * t)[..., None]
    blended = pixels * (1.0 - opacity) + colours * opacity
    out = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(out).save(buffer, format="PNG")
    return buffer.getvalue()


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
