"""Deterministic generator of a synthetic COCO-format image archive.

MS-COCO, the data set of the reproduced study, cannot be downloaded on the
project's machines, so the retrieval pipeline is developed and tested on a
stand-in with the same file layout (``images/`` plus ``instances.json``) and
the same 24 query classes. Each class is a flat polygon with its own shape,
colour and texture, drawn on a textured background; because objects never
overlap, each annotation's polygon is exactly the object's outline.

The scenes are composed so that the two statistics that define the study's
superclasses (see :mod:`retrieval.statistics`) come out as in the paper:

* *clutter*: "busy" scenes hold 3-5 objects drawn mostly from the 12
  cluttered classes, "simple" scenes hold 1-2 objects drawn mostly from the 12
  uncluttered classes;
* *size*: every class has a target mean area fraction, the six Large classes
  of each clutter group well above the six Small ones, dining_table the
  largest and spoon the smallest (about 35 times smaller in area).

Only numpy and Pillow are used (no Django), and every image is generated
from its own random generator ``np.random.default_rng([seed, index])``, so
an archive is reproducible byte for byte and its first ``k`` images do not
depend on how many images were asked for.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["CLASSES", "TEXTURES", "ClassSpec", "generate_archive", "unit_polygon"]

TEXTURES: tuple[str, ...] = ("solid", "hstripes", "vstripes", "dstripes", "checker", "dots")

# Per-instance jitter: rotation in degrees either way, linear scale factor range.
_MAX_ROTATION_DEG = 20.0
_SCALE_RANGE = (0.85, 1.15)
# Scene mix. A busy scene holds 3-5 objects of distinct classes, mostly from
# the cluttered group, with one large object in most of them; a simple scene
# holds 1 or 2 objects, mostly from the uncluttered group, the first of them
# large in most of them. The probabilities keep every class in >= ~5 % of
# the images on average.
_BUSY_PROBABILITY = 0.45
_BUSY_OBJECTS = (3, 5)
_BUSY_LARGE_PROBABILITY = 0.85
_SIMPLE_SINGLE_PROBABILITY = 0.6
_SIMPLE_LARGE_PROBABILITY = 0.7
# Chance that an object of a scene is drawn from the *other* clutter group. A
# little mixing keeps "uncluttered" classes from never meeting others (as in
# COCO) while the group means of clutter stay about 2 apart.
_CROSSOVER = 0.03
# Random positions tried per object before it is dropped (never overlapped).
_PLACEMENT_TRIES = 40


# ---------------------------------------------------------------------------
# Shapes: each is a simple polygon (no self-intersection, no holes), given in
# arbitrary units with y pointing down as in image coordinates, and then
# normalised to unit area centred on its bounding box.
# ---------------------------------------------------------------------------


def _arc(cx: float, cy: float, r: float, start: float, stop: float, n: int) -> np.ndarray:
    """Points on a circular arc, shape (n, 2), angles in radians (y down)."""
    t = np.linspace(start, stop, n)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def _regular(n: int, phase: float = -math.pi / 2) -> np.ndarray:
    return _arc(0.0, 0.0, 1.0, phase, phase + 2 * math.pi, n + 1)[:-1]


def _rectangle(aspect: float) -> np.ndarray:
    w, h = aspect / 2, 0.5
    return np.array([(-w, -h), (w, -h), (w, h), (-w, h)])


def _star(points: int, inner: float) -> np.ndarray:
    radii = np.tile([1.0, inner], points)
    t = -math.pi / 2 + np.arange(2 * points) * math.pi / points
    return np.stack([radii * np.cos(t), radii * np.sin(t)], axis=1)


def _keyhole() -> np.ndarray:
    # A round bowl with a thin handle hanging below it (a spoon from above).
    half = 0.09
    delta = math.asin(half / 0.5)
    bowl = _arc(0.0, 0.0, 0.5, math.pi / 2 + delta, 2 * math.pi + math.pi / 2 - delta, 33)
    return np.vstack([bowl, [(half, 1.55), (-half, 1.55)]])


def _c_ring() -> np.ndarray:
    # An annulus cut open by a narrow slit, which makes it a simple polygon
    # (COCO polygons cannot have holes) that still looks like a ring.
    gap = math.radians(14)
    start, stop = math.pi / 2 + gap, 2 * math.pi + math.pi / 2 - gap
    outer = _arc(0.0, 0.0, 0.5, start, stop, 40)
    inner = _arc(0.0, 0.0, 0.3, stop, start, 40)
    return np.vstack([outer, inner])


def _arch() -> np.ndarray:
    # Rectangle with a semicircular top.
    top = _arc(0.0, 0.5, 0.5, 0.0, -math.pi, 25)
    return np.vstack([[(-0.5, 1.0), (0.5, 1.0)], top])


def _semicircle() -> np.ndarray:
    return _arc(0.0, 0.0, 1.0, math.pi, 2 * math.pi, 33)


def _fan() -> np.ndarray:
    # A 120-degree circular sector opening upwards, apex at the bottom.
    return np.vstack([[(0.0, 0.0)], _arc(0.0, 0.0, 1.0, -5 * math.pi / 6, -math.pi / 6, 25)])


# Straight-edged outlines as vertex lists (x, y), y down.
# fmt: off
_VERTICES: dict[str, list[tuple[float, float]]] = {
    "trapezoid": [(-0.7, 0.4), (0.7, 0.4), (0.4, -0.4), (-0.4, -0.4)],
    "hourglass": [(-0.5, -0.7), (0.5, -0.7), (0.12, 0.0), (0.5, 0.7), (-0.5, 0.7), (-0.12, 0.0)],
    "parallelogram": [(-0.3, -0.4), (0.9, -0.4), (0.3, 0.4), (-0.9, 0.4)],
    "chamfered_rectangle": [
        (-0.55, -0.5), (0.55, -0.5), (0.75, -0.3), (0.75, 0.3),
        (0.55, 0.5), (-0.55, 0.5), (-0.75, 0.3), (-0.75, -0.3),
    ],
    "l_shape": [(0.0, 0.0), (0.35, 0.0), (0.35, 1.0), (0.9, 1.0), (0.9, 1.35), (0.0, 1.35)],
    # Three prongs on a bar with a short handle (a fork).
    "comb": [
        (0.0, 0.0), (0.22, 0.0), (0.22, 0.55), (0.39, 0.55), (0.39, 0.0), (0.61, 0.0),
        (0.61, 0.55), (0.78, 0.55), (0.78, 0.0), (1.0, 0.0), (1.0, 0.9), (0.61, 0.9),
        (0.61, 1.6), (0.39, 1.6), (0.39, 0.9), (0.0, 0.9),
    ],
    "blade": [(0.0, 0.0), (1.0, 0.0), (1.3, 0.13), (1.0, 0.26), (0.0, 0.26)],
    # A cup on a stem on a foot.
    "goblet": [
        (-0.5, 0.0), (0.5, 0.0), (0.09, 0.6), (0.09, 0.98),
        (0.38, 1.1), (-0.38, 1.1), (-0.09, 0.98), (-0.09, 0.6),
    ],
    "diamond": [(0.0, -0.7), (0.45, 0.0), (0.0, 0.7), (-0.45, 0.0)],
    "arrow": [
        (0.0, -0.15), (0.7, -0.15), (0.7, -0.4), (1.2, 0.0), (0.7, 0.4), (0.7, 0.15), (0.0, 0.15),
    ],
    "cross": [
        (-0.18, -0.5), (0.18, -0.5), (0.18, -0.18), (0.5, -0.18), (0.5, 0.18), (0.18, 0.18),
        (0.18, 0.5), (-0.18, 0.5), (-0.18, 0.18), (-0.5, 0.18), (-0.5, -0.18), (-0.18, -0.18),
    ],
}
# fmt: on

_RAW_SHAPES: dict[str, Callable[[], np.ndarray]] = {
    "wide_rectangle": lambda: _rectangle(1.7),
    "square": lambda: _rectangle(1.0),
    "hexagon": lambda: _regular(6, 0.0),
    "semicircle": _semicircle,
    "circle": lambda: _regular(40),
    "long_rectangle": lambda: _rectangle(3.0),
    "triangle": lambda: _regular(3),
    "fan": _fan,
    "tall_rectangle": lambda: _rectangle(1 / 1.6),
    "keyhole": _keyhole,
    "arch": _arch,
    "c_ring": _c_ring,
    "star": lambda: _star(5, 0.45),
    **{name: (lambda v=vertices: np.array(v)) for name, vertices in _VERTICES.items()},
}


def _shoelace(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _normalise(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    # Rotation is about the bounding-box centre, which keeps the rotated
    # outline close to where placement expects it.
    points = points - (points.min(axis=0) + points.max(axis=0)) / 2
    points = points / math.sqrt(abs(_shoelace(points)))
    points.setflags(write=False)
    return points


_SHAPES: dict[str, np.ndarray] = {name: _normalise(make()) for name, make in _RAW_SHAPES.items()}


def unit_polygon(shape: str) -> np.ndarray:
    """Outline of a named shape scaled to unit area.

    Parameters
    ----------
    shape : str
        A ``ClassSpec.shape`` name.

    Returns
    -------
    numpy.ndarray, shape (n_vertices, 2), float64, read-only
        Vertices ``(x, y)`` (y down) of a simple polygon of area 1 centred on
        its bounding box; scaling by ``s`` pixels gives an area of ``s**2`` px^2.
    """
    try:
        return _SHAPES[shape]
    except KeyError:
        raise ValueError(f"unknown shape {shape!r}; known: {sorted(_SHAPES)}") from None


# ---------------------------------------------------------------------------
# The class table.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassSpec:
    """How one of the 24 query classes looks in the synthetic archive.

    Attributes
    ----------
    category_id : int
        COCO category id, 1..24.
    name : str
        COCO class name with ``_`` for spaces (``dining_table``).
    supercategory : str
        The paper's superclass code: ``"CL"``, ``"CS"``, ``"UL"`` or ``"US"``.
    shape : str
        Name of the outline, see :func:`unit_polygon`.
    color : tuple of int
        Main RGB colour, each channel 0..255.
    texture : str
        One of :data:`TEXTURES`, drawn inside the outline in the main colour
        and a darker (or, for dark colours, lighter) second colour.
    area_fraction : float
        Target mean instance area as a fraction of the image area.
    cluttered : bool
        Whether the class belongs to the busy-scene group.
    """

    category_id: int
    name: str
    supercategory: str
    shape: str
    color: tuple[int, int, int]
    texture: str
    area_fraction: float
    cluttered: bool

    @property
    def large(self) -> bool:
        """Whether the class is one of the paper's Large classes."""
        return self.supercategory.endswith("L")


def _spec(cid, name, code, shape, color, texture, fraction) -> ClassSpec:
    return ClassSpec(cid, name, code, shape, color, texture, fraction, code.startswith("C"))


# Target fractions: Large classes 0.09-0.24, Small ones 0.007-0.03, so the size
# split cannot flip under the +-32 % per-instance area jitter; dining_table /
# spoon = 34, close to the ~40 of the paper's COCO statistics. Large objects
# stay below a quarter of the image so that a busy scene still has room for
# several small ones next to one of them.
CLASSES: tuple[ClassSpec, ...] = (
    _spec(1, "dining_table", "CL", "wide_rectangle", (139, 90, 43), "hstripes", 0.24),
    _spec(2, "microwave", "CL", "square", (185, 185, 195), "vstripes", 0.14),
    _spec(3, "oven", "CL", "hexagon", (70, 70, 82), "checker", 0.17),
    _spec(4, "sink", "CL", "semicircle", (150, 200, 230), "solid", 0.12),
    _spec(5, "toaster", "CL", "trapezoid", (205, 45, 40), "dstripes", 0.09),
    _spec(6, "vase", "CL", "hourglass", (130, 60, 170), "dots", 0.10),
    _spec(7, "book", "CS", "tall_rectangle", (165, 25, 35), "hstripes", 0.022),
    _spec(8, "chair", "CS", "l_shape", (0, 140, 140), "solid", 0.03),
    _spec(9, "fork", "CS", "comb", (230, 215, 50), "solid", 0.012),
    _spec(10, "knife", "CS", "blade", (205, 205, 220), "solid", 0.013),
    _spec(11, "spoon", "CS", "keyhole", (20, 90, 210), "solid", 0.007),
    _spec(12, "wine_glass", "CS", "goblet", (120, 10, 60), "dstripes", 0.016),
    _spec(13, "cake", "UL", "circle", (245, 160, 200), "dots", 0.10),
    _spec(14, "keyboard", "UL", "long_rectangle", (35, 35, 35), "checker", 0.12),
    _spec(15, "laptop", "UL", "parallelogram", (90, 110, 150), "solid", 0.16),
    _spec(16, "sandwich", "UL", "triangle", (225, 195, 110), "hstripes", 0.13),
    _spec(17, "tv", "UL", "chamfered_rectangle", (20, 40, 110), "dstripes", 0.15),
    _spec(18, "umbrella", "UL", "fan", (30, 150, 70), "vstripes", 0.11),
    _spec(19, "apple", "US", "diamond", (120, 200, 40), "solid", 0.022),
    _spec(20, "backpack", "US", "arch", (95, 105, 40), "checker", 0.028),
    _spec(21, "carrot", "US", "arrow", (245, 125, 20), "dstripes", 0.014),
    _spec(22, "clock", "US", "c_ring", (240, 240, 228), "dots", 0.026),
    _spec(23, "handbag", "US", "cross", (200, 40, 160), "hstripes", 0.02),
    _spec(24, "orange", "US", "star", (255, 180, 30), "solid", 0.018),
)

# Scene pools, keyed by (cluttered, large).
_POOLS: dict[tuple[bool, bool], tuple[ClassSpec, ...]] = {
    (cluttered, large): tuple(
        spec for spec in CLASSES if spec.cluttered == cluttered and spec.large == large
    )
    for cluttered in (True, False)
    for large in (True, False)
}


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    """Rotate points, shape (n, 2), by ``angle`` radians about the origin."""
    # Written out elementwise rather than as a matrix product so the result
    # never depends on which BLAS kernel numpy happens to pick.
    cos, sin = math.cos(angle), math.sin(angle)
    x, y = points[:, 0], points[:, 1]
    return np.stack([x * cos - y * sin, x * sin + y * cos], axis=1)


def _worst_extent(spec: ClassSpec) -> float:
    """Largest bounding-box side of an instance, as a fraction of the image side."""
    side = math.sqrt(spec.area_fraction) * _SCALE_RANGE[1]
    extents = [
        np.ptp(_rotate(unit_polygon(spec.shape), math.radians(degrees)), axis=0).max()
        for degrees in np.linspace(-_MAX_ROTATION_DEG, _MAX_ROTATION_DEG, 41)
    ]
    return float(max(extents) * side)


def _check_table() -> None:
    # Guards against editing mistakes in the table; each class must stay
    # recognisable by shape alone and by colour+texture alone.
    assert [spec.category_id for spec in CLASSES] == list(range(1, len(CLASSES) + 1))
    assert len({spec.name for spec in CLASSES}) == len(CLASSES)
    assert len({spec.shape for spec in CLASSES}) == len(CLASSES)
    assert len({(spec.color, spec.texture) for spec in CLASSES}) == len(CLASSES)
    assert all(spec.texture in TEXTURES and spec.shape in _SHAPES for spec in CLASSES)
    smallest_large = min(spec.area_fraction for spec in CLASSES if spec.large)
    largest_small = max(spec.area_fraction for spec in CLASSES if not spec.large)
    assert smallest_large > 2 * largest_small
    # Any instance must fit in an empty image of the smallest allowed size,
    # whose margins take up to 2.2 % of the side; otherwise an image could
    # come out empty.
    assert all(_worst_extent(spec) < 0.95 for spec in CLASSES)


_check_table()


# ---------------------------------------------------------------------------
# Rendering.
# ---------------------------------------------------------------------------


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Bilinearly stretch a (c, k, k) grid, k >= 2, to shape (c, size, size)."""
    # Gathers and elementwise arithmetic only (no BLAS), for reproducibility.
    position = np.linspace(0.0, grid.shape[1] - 1, size)
    low = np.minimum(position.astype(np.int64), grid.shape[1] - 2)
    frac = position - low
    rows = grid[:, low] * (1 - frac)[None, :, None] + grid[:, low + 1] * frac[None, :, None]
    return rows[:, :, low] * (1 - frac) + rows[:, :, low + 1] * frac


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted, textured background, shape (size, size, 3), float32.

    Values are intensities on the 0..255 scale; the few that stray outside
    it are clipped when the finished image is converted to uint8.

    The kind of texture (smooth noise, gradient or soft stripes) and its
    colours vary per image so that a model cannot tell classes apart by the
    background they happen to be drawn on.
    """
    # Low saturation: a grey level plus a small per-channel tint.
    base = rng.uniform(70.0, 185.0) + rng.normal(0.0, 14.0, 3)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    kind = rng.integers(3)
    # Built as channel planes, shape (3, size, size): numpy broadcasts far
    # faster over long inner axes than over a trailing axis of length 3.
    if kind == 0:
        cells = int(rng.integers(3, 9))
        planes = _upsample(rng.normal(0.0, 16.0, (3, cells, cells)), size)
    else:
        angle = rng.uniform(0.0, math.pi)
        ramp = math.cos(angle) * coords[None, :] + math.sin(angle) * coords[:, None]
        if kind == 1:
            profile = ramp * 1.4  # a linear gradient, about -1..1 across the image
        else:
            period = rng.uniform(0.06, 0.25)
            profile = np.sin(ramp * (2 * math.pi / period)) * 0.5
        planes = profile[None, :, :] * rng.normal(0.0, 20.0, (3, 1, 1))
    # Fine grain, so that flat areas are not perfectly flat either.
    grain = rng.standard_normal((size, size), dtype=np.float32) * 4.0
    planes = planes.astype(np.float32) + (base.astype(np.float32)[:, None, None] + grain)
    return np.ascontiguousarray(planes.transpose(1, 2, 0))


def _secondary(color: np.ndarray) -> np.ndarray:
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    if luminance > 90:
        return color * 0.55
    return color + (255.0 - color) * 0.45


def _texture_mask(texture: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """Where the second colour goes; u, v are object-frame pixel offsets."""
    if texture == "solid":
        return np.zeros(u.shape, dtype=bool)
    if texture == "hstripes":
        return np.floor(v / period) % 2 == 1
    if texture == "vstripes":
        return np.floor(u / period) % 2 == 1
    if texture == "dstripes":
        return np.floor((u + v) / (period * math.sqrt(2))) % 2 == 1
    if texture == "checker":
        return (np.floor(u / period) + np.floor(v / period)) % 2 == 1
    if texture == "dots":
        du = np.mod(u, 2 * period) - period
        dv = np.mod(v, 2 * period) - period
        return du * du + dv * dv < (0.6 * period) ** 2
    raise ValueError(f"unknown texture {texture!r}")


def _draw(
    canvas: np.ndarray,
    vertices: np.ndarray,
    centre: np.ndarray,
    angle: float,
    spec: ClassSpec,
    brightness: float,
) -> None:
    """Fill a polygon with the class texture, in place.

    Parameters
    ----------
    canvas : numpy.ndarray, shape (size, size, 3), float32
        The image being drawn.
    vertices : numpy.ndarray, shape (n, 2)
        Polygon in COCO pixel coordinates (pixel ``(i, j)`` covers
        ``[i, i+1] x [j, j+1]``), already rounded as stored in the annotation.
    centre : numpy.ndarray, shape (2,)
        Object centre in pixels; origin of the texture pattern.
    angle : float
        Object rotation in radians; the texture turns with the object.
    spec : ClassSpec
        The object's class.
    brightness : float
        Per-instance factor applied to both texture colours.
    """
    size = canvas.shape[0]
    x0, y0 = np.floor(vertices.min(axis=0)).astype(int)
    x1, y1 = np.ceil(vertices.max(axis=0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    mask_image = Image.new("L", (x1 - x0, y1 - y0), 0)
    # Pillow puts pixel centres at integer coordinates, COCO at half-integers.
    local = vertices - (x0 + 0.5, y0 + 0.5)
    ImageDraw.Draw(mask_image).polygon([tuple(p) for p in local.tolist()], fill=255)
    mask = np.asarray(mask_image) > 0

    dy = np.arange(y0, y1) + 0.5 - centre[1]
    dx = np.arange(x0, x1) + 0.5 - centre[0]
    cos, sin = math.cos(angle), math.sin(angle)
    u = cos * dx[None, :] + sin * dy[:, None]
    v = -sin * dx[None, :] + cos * dy[:, None]
    period = max(3.0, size / 32)
    second = _texture_mask(spec.texture, u, v, period)

    primary = np.asarray(spec.color, dtype=np.float32) * brightness
    secondary = _secondary(np.asarray(spec.color, dtype=np.float32)) * brightness
    region = canvas[y0:y1, x0:x1]
    region[mask] = primary
    region[mask & second] = secondary


def _pick(
    rng: np.random.Generator, cluttered: bool, large: bool, exclude: list[ClassSpec]
) -> ClassSpec:
    # A little mixing: now and then an object comes from the other clutter
    # group, as uncluttered COCO classes do sometimes meet others.
    if rng.random() < _CROSSOVER:
        cluttered = not cluttered
    pool = [spec for spec in _POOLS[cluttered, large] if spec not in exclude]
    return pool[int(rng.integers(len(pool)))]


def _scene(rng: np.random.Generator) -> list[ClassSpec]:
    """Classes of the objects to try to place in one image, largest first.

    Both kinds of scene hold at most one large object: two rarely fit side by
    side, and dropping objects at random would blur the clutter statistics.
    """
    if rng.random() < _BUSY_PROBABILITY:
        count = int(rng.integers(_BUSY_OBJECTS[0], _BUSY_OBJECTS[1] + 1))
        n_large = int(rng.random() < _BUSY_LARGE_PROBABILITY)
        chosen: list[ClassSpec] = []
        for i in range(count):
            # Distinct classes, so that a busy scene's object count is also
            # its count of distinct classes.
            chosen.append(_pick(rng, True, i < n_large, exclude=chosen))
    else:
        count = 1 if rng.random() < _SIMPLE_SINGLE_PROBABILITY else 2
        first_large = bool(rng.random() < _SIMPLE_LARGE_PROBABILITY)
        # Repeats allowed here: two oranges are still a simple scene.
        chosen = [_pick(rng, False, i == 0 and first_large, exclude=[]) for i in range(count)]
    # Big objects first: they are the hardest to fit, and dropping a small one
    # instead barely changes the scene.
    chosen.sort(key=lambda spec: -spec.area_fraction)
    return chosen


def _render(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Draw one image.

    Returns
    -------
    image : numpy.ndarray, shape (size, size, 3), uint8
    objects : list of (category_id, polygon)
        ``polygon`` is an int64 array, shape (n, 2), of vertex coordinates in
        hundredths of a pixel: the exact, rounded outline of a drawn object.
    """
    canvas = _background(rng, size)
    margin = 1.0 + size / 160  # keeps rounded outlines strictly inside the image
    gap = 2.0 * size / 160  # between bounding boxes, so rounding never makes them touch
    placed: list[tuple[float, float, float, float]] = []
    objects: list[tuple[int, np.ndarray]] = []
    max_angle = math.radians(_MAX_ROTATION_DEG)
    for spec in _scene(rng):
        angle = rng.uniform(-max_angle, max_angle)
        side = math.sqrt(spec.area_fraction) * size * rng.uniform(*_SCALE_RANGE)
        brightness = rng.uniform(0.88, 1.12)
        outline = _rotate(unit_polygon(spec.shape), angle) * side
        low, high = outline.min(axis=0), outline.max(axis=0)
        shift_low, shift_high = margin - low, size - margin - high
        if (shift_high < shift_low).any():
            continue  # cannot fit even in an empty image
        for _ in range(_PLACEMENT_TRIES):
            shift = rng.uniform(shift_low, shift_high)
            box = (*(low + shift), *(high + shift))
            if all(
                box[2] + gap <= other[0]
                or other[2] + gap <= box[0]
                or box[3] + gap <= other[1]
                or other[3] + gap <= box[1]
                for other in placed
            ):
                break
        else:
            continue  # dropped rather than drawn overlapping
        placed.append(box)
        hundredths = np.rint((outline + shift) * 100).astype(np.int64)
        _draw(canvas, hundredths / 100, shift, angle, spec, brightness)
        objects.append((spec.category_id, hundredths))
    image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return image, objects


def _annotation_geometry(hundredths: np.ndarray) -> tuple[list[float], list[float], float]:
    """COCO segmentation, bbox and area of a polygon given in 1/100 px.

    The shoelace sum is taken over the integer coordinates, so ``area`` is
    exactly the area of the stored (rounded) polygon.
    """
    x, y = hundredths[:, 0], hundredths[:, 1]
    twice_area = int(abs(int(np.dot(x, np.roll(y, -1))) - int(np.dot(y, np.roll(x, -1)))))
    segmentation = (hundredths.reshape(-1) / 100).tolist()
    x_min, y_min = int(x.min()), int(y.min())
    bbox = [x_min / 100, y_min / 100, (int(x.max()) - x_min) / 100, (int(y.max()) - y_min) / 100]
    return segmentation, bbox, twice_area / 20000


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be {bounds}, got {value}")
    return int(value)


def generate_archive(
    out_dir: str | os.PathLike[str],
    *,
    n_images: int,
    seed: int,
    image_size: int = 160,
    jpeg_quality: int = 90,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write a synthetic COCO-format archive.

    Parameters
    ----------
    out_dir : path-like
        Directory to write into; created if missing. Existing files of the
        same names are overwritten; other files are left alone.
    n_images : int
        Number of images, >= 1.
    seed : int
        Non-negative seed. Image ``i`` (0-based) is drawn from
        ``np.random.default_rng([seed, i])``.
    image_size : int, default 160
        Width and height of every image in pixels, >= 64.
    jpeg_quality : int, default 90
        JPEG quality, 1..100.
    progress : callable, optional
        Called after each image with the number of images written so far.

    Returns
    -------
    pathlib.Path
        ``out_dir / "instances.json"``.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Notes
    -----
    Writes ``out_dir/images/<12-digit image id>.jpg`` (RGB, ``image_size``
    square) and ``out_dir/instances.json`` with the keys ``info``,
    ``licenses``, ``images``, ``annotations`` and ``categories`` in that
    order. Image and annotation ids start at 1. Each annotation's
    ``segmentation`` is ``[[x1, y1, x2, y2, ...]]`` in pixels rounded to 2
    decimals, ``bbox`` is ``[x, y, w, h]`` of that polygon, ``area`` its
    shoelace area in px^2 and ``iscrowd`` 0. Objects never overlap, so each
    polygon is exactly the visible outline.

    The same ``(n_images, seed, image_size, jpeg_quality)`` gives
    byte-identical files (with the same Pillow/libjpeg build).
    """
    n_images = _check_int("n_images", n_images, 1)
    seed = _check_int("seed", seed, 0)
    image_size = _check_int("image_size", image_size, 64)
    jpeg_quality = _check_int("jpeg_quality", jpeg_quality, 1, 100)
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be callable or None, got {progress!r}")

    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)

    images: list[dict] = []
    annotations: list[dict] = []
    for index in range(n_images):
        image_id = index + 1
        rng = np.random.default_rng([seed, index])
        pixels, objects = _render(rng, image_size)
        file_name = f"{image_id:012d}.jpg"
        Image.fromarray(pixels, mode="RGB").save(
            image_dir / file_name, format="JPEG", quality=jpeg_quality
        )
        images.append(
            {"id": image_id, "file_name": file_name, "width": image_size, "height": image_size}
        )
        for category_id, hundredths in objects:
            segmentation, bbox, area = _annotation_geometry(hundredths)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_id,
                    "segmentation": [segmentation],
                    "area": area,
                    "bbox": bbox,
                    "iscrowd": 0,
                }
            )
        if progress is not None:
            progress(image_id)

    document = {
        # No timestamps: they would break byte-identical regeneration.
        "info": {
            "description": (
                f"Synthetic COCO-format archive (seed={seed}, n_images={n_images}, "
                f"image_size={image_size})"
            ),
            "url": "",
            "version": "1.0",
            "year": 2021,
            "contributor": "studyplatform retrieval.synthetic",
            "date_created": "",
        },
        "licenses": [{"id": 1, "name": "Synthetic data, no restrictions", "url": ""}],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": spec.category_id, "name": spec.name, "supercategory": spec.supercategory}
            for spec in CLASSES
        ],
    }
    path = out_dir / "instances.json"
    # Write then rename, so a reader never sees a half-written file.
    partial = out_dir / "instances.json.partial"
    partial.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
    os.replace(partial, path)
    return path
