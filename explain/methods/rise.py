"""RISE adapted to similarity (seed 002: Plummer et al., supplementary Sec. 1.1, "RISE").

Randomized Input Sampling for Explanation (Petsiuk et al. 2018, the seed's ref. [5]) with the
classifier's score replaced by the similarity to the query. For a query ``Q``, a result ``A``,
an embedding ``f`` and ``N`` random masks ``M_i`` with values in [0, 1]::

    w_i = s(f(Q), f(A (.) M_i))
    map = sum_i w_i M_i / (N p)

Masks, as in the seed and Petsiuk et al.: a binary ``grid x grid`` array whose cells are 1 with
probability ``p`` (``keep_probability``), upsampled bilinearly to ``(grid + 1) x cell`` pixels
per axis (``cell = ceil(side / grid)``) and cropped to the image at a random shift in
``[0, cell)`` per axis, which removes the fixed grid structure. All randomness comes from
``np.random.default_rng(seed)``, drawn in a fixed order, so the same seed gives the same masks
and the same maps (whatever the batch size).

``A (.) M_i`` multiplies the *normalised* image by the mask, so removed pixels move towards 0,
the dataset mean colour (the same fill as the "occlusion" method).

Choice of the similarity ``s``: ``1 - d`` for ``distance="hik"`` (the histogram intersection
itself, in [0, 1]) and ``"cosine"`` (the cosine similarity, in [-1, 1]); ``-d`` for ``"l2"``
(the negative Euclidean distance). With "hik" the map is >= 0 as computed. Otherwise a map may
hold negative values; then the whole map is shifted by its minimum so that it is >= 0 with
minimum 0. The shift is one constant per result: it keeps the order of the pixels within a map
(what a heat map shows) but not the absolute values, so do not compare such maps across results
by value.

No Django here (STYLE habit 9).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from explain.base import Embed, SimilaritySaliency, embed_device, embed_in_batches
from explain.methods.occlusion import (
    check_batch_size,
    check_distance,
    query_distances,
)
from explain.precision import check_precision
from explain.registry import register_method

__all__ = ["Rise", "rise_masks"]


def _draw(n_masks: int, grid: int, keep_probability: float, seed: int, cell: tuple[int, int]):
    """The random part of the masks: cells (n, grid, grid) float32, shifts (n, 2) int."""
    rng = np.random.default_rng(seed)
    cells = (rng.random((n_masks, grid, grid)) < keep_probability).astype(np.float32)
    shifts = np.stack(
        [rng.integers(0, cell[0], size=n_masks), rng.integers(0, cell[1], size=n_masks)], axis=1
    )
    return cells, shifts


def _upsample(
    cells: np.ndarray, shifts: np.ndarray, height: int, width: int, cell: tuple[int, int]
) -> np.ndarray:
    """Bilinear upsampling to (grid + 1) cells per axis, then the shifted crop to the image."""
    grid = cells.shape[1]
    up = F.interpolate(
        torch.from_numpy(cells)[:, None],
        size=((grid + 1) * cell[0], (grid + 1) * cell[1]),
        mode="bilinear",
        align_corners=False,
    )[:, 0].numpy()
    masks = np.empty((len(cells), height, width), dtype=np.float32)
    for i, (top, left) in enumerate(shifts.tolist()):
        masks[i] = up[i, top : top + height, left : left + width]
    # Bilinear weights sum to 1, so the values stay in [0, 1]; the clip only removes rounding.
    return np.clip(masks, 0.0, 1.0, out=masks)


def rise_masks(
    n_masks: int, height: int, width: int, *, grid: int, keep_probability: float, seed: int
) -> np.ndarray:
    """The random masks ``M_i`` of RISE (Petsiuk et al., Sec. 3.2), all at once.

    :class:`Rise` builds the same masks ``batch_size`` at a time; this function is for tests
    and small images (memory ``4 * n_masks * height * width`` bytes).

    Parameters
    ----------
    n_masks, height, width : int
    grid : int
        Side ``s`` of the coarse binary grid, ``<= min(height, width)``.
    keep_probability : float
        Probability ``p`` that a grid cell is 1 (kept).
    seed : int
        Seed of ``np.random.default_rng``: first the ``(n_masks, grid, grid)`` cells are drawn,
        then the row shifts, then the column shifts; same seed, same masks.

    Returns
    -------
    ndarray of shape (n_masks, height, width), float32, values in [0, 1]
    """
    cell = (math.ceil(height / grid), math.ceil(width / grid))
    cells, shifts = _draw(n_masks, grid, keep_probability, seed, cell)
    return _upsample(cells, shifts, height, width, cell)


@register_method("rise")
class Rise(SimilaritySaliency):
    """RISE for similarity; see the module docstring for the formula and the choice of ``s``.

    Parameters
    ----------
    n_masks : int, default 2000
        ``N`` (the seed: 2,000).
    grid : int, default 8
        Side ``s`` of the coarse binary grid (the seed: 8 x 8).
    keep_probability : float, default 0.5
        ``p``, in (0, 1] (the seed: 0.5).
    distance : {"hik", "l2", "cosine"}, default "hik"
        ``d``, as in :func:`retrieval.search.distances`; for "hik" the embeddings are
        L1-normalised first (they must be non-negative).
    seed : int, default 0
        Seed of the masks (``np.random.default_rng(seed)``).
    batch_size : int, default 64
        Masked images per forward pass.
    precision : {"fp32", "tf32", "bf16"}, default "fp32"
        Arithmetic of the forward passes (:mod:`explain.precision`).

    Notes
    -----
    :meth:`explain` returns maps of shape (n_results, H, W), float32, >= 0: in units of ``s``
    for "hik"; shifted to minimum 0 for the other distances when negative. The same masks are
    used for every result.

    Raises
    ------
    ValueError
        On an argument out of range (at construction), or in :meth:`explain` if ``grid`` is
        larger than a side of the images.
    """

    def __init__(
        self,
        n_masks: int = 2000,
        grid: int = 8,
        keep_probability: float = 0.5,
        distance: str = "hik",
        seed: int = 0,
        batch_size: int = 64,
        precision: str = "fp32",
    ) -> None:
        for name, value in (("n_masks", n_masks), ("grid", grid)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.n_masks, self.grid = n_masks, grid
        if (
            isinstance(keep_probability, bool)
            or not isinstance(keep_probability, int | float)
            or not 0 < keep_probability <= 1
        ):
            raise ValueError(f"keep_probability must be in (0, 1], got {keep_probability!r}")
        self.keep_probability = float(keep_probability)
        self.distance = check_distance(distance)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        self.seed = seed
        self.batch_size = check_batch_size(batch_size)
        self.precision = check_precision(precision)

    def _explain(self, embed: Embed, query: torch.Tensor, results: torch.Tensor) -> np.ndarray:
        height, width = (int(v) for v in results.shape[2:])
        if self.grid > min(height, width):
            raise ValueError(f"grid ({self.grid}) is larger than the images ({height}x{width})")
        device = embed_device(embed, results.device)
        query_embedding = embed_in_batches(embed, query[None].to(device), self.batch_size)[0]
        cell = (math.ceil(height / self.grid), math.ceil(width / self.grid))
        cells, shifts = _draw(self.n_masks, self.grid, self.keep_probability, self.seed, cell)
        maps = np.empty((results.shape[0], height, width), dtype=np.float32)
        for i, result in enumerate(results.to(device)):
            saliency = np.zeros(height * width, dtype=np.float64)
            # Masks are rebuilt per batch: at most batch_size masks and masked images exist at
            # any time (all 2,000 masks at 224 px would take 400 MB).
            for start in range(0, self.n_masks, self.batch_size):
                stop = min(start + self.batch_size, self.n_masks)
                masks = _upsample(cells[start:stop], shifts[start:stop], height, width, cell)
                chunk = torch.from_numpy(masks).to(device=device, dtype=result.dtype)
                features = embed_in_batches(embed, result[None] * chunk[:, None], self.batch_size)
                distance = query_distances(query_embedding, features, self.distance)
                # The documented choice of s: 1 - d for hik and cosine, -d for l2.
                weights = -distance if self.distance == "l2" else 1.0 - distance
                saliency += weights @ masks.reshape(len(masks), -1).astype(np.float64)
            # Petsiuk et al., Sec. 3.2: the Monte Carlo estimate sum_i w_i M_i / (N p).
            saliency /= self.n_masks * self.keep_probability
            if saliency.min() < 0:
                saliency -= saliency.min()
            maps[i] = saliency.reshape(height, width)
        return maps
