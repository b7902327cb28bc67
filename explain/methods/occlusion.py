"""Plain sliding-window occlusion (seed 002: Plummer et al., supplementary Sec. 1.1).

"Sliding Window": square windows sampled regularly over the result image are removed, and the
map averages, per pixel, the effect each removal has on the similarity with the query. For a
query ``Q``, a result ``A``, an embedding ``f``, a distance ``d`` and the window masks ``m_i``
of :mod:`explain.masks` (1 = kept, 0 = occluded)::

    D    = d(f(Q), f(A))
    D'_i = d(f(Q), f(A with window i set to 0))
    map  = sum_i max(D'_i - D, 0) (1 - m_i) / sum_i (1 - m_i)

Each window's score, the similarity drop ``max(D'_i - D, 0)``, is given to every pixel of the
window, and pixels covered by several windows get the mean of their scores. The images are
already normalised (``(pixel - mean) / std``), so setting a window to 0 fills it with the
dataset mean colour, as the seed's "removing" is usually read.

This is SBSM's Eq. 1-4 (seed 000) with ``fill="mean"``; it is kept as its own method, with its
own parameter names, because the study compares it under the name the seed gives it. Unlike
:class:`explain.methods.sbsm.Sbsm` it does not split the work into a cacheable half.

No Django here (STYLE habit 9).
"""

from __future__ import annotations

import numpy as np
import torch

from explain.base import Embed, SimilaritySaliency, embed_device, embed_in_batches
from explain.masks import axis_cover, block_positions, check_block_stride
from explain.precision import check_precision
from explain.registry import register_method
from retrieval.backbones import features_l1_normalise
from retrieval.search import METRICS, distances

__all__ = [
    "Occlusion",
    "check_batch_size",
    "check_distance",
    "query_distances",
]


def check_batch_size(batch_size: object) -> int:
    """``batch_size`` as an int; ValueError unless it is an integer >= 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return batch_size


def check_distance(distance: object) -> str:
    """``distance`` if it is one of :data:`retrieval.search.METRICS`; ValueError otherwise."""
    if distance not in METRICS:
        raise ValueError(f"unknown distance {distance!r}; valid: {list(METRICS)}")
    return distance  # type: ignore[return-value]


def query_distances(query: np.ndarray, features: np.ndarray, distance: str) -> np.ndarray:
    """``d(query, features[j])`` for every row, float64, as the search computes it.

    Parameters
    ----------
    query : ndarray of shape (D,)
    features : ndarray of shape (n, D)
    distance : {"hik", "l2", "cosine"}
        For "hik" both sides are L1-normalised first, as the study's features are (they must
        then be non-negative; :func:`retrieval.backbones.features_l1_normalise` says so if not).

    Returns
    -------
    ndarray of shape (n,), float64
    """
    query = np.asarray(query, dtype=np.float64)[None]
    features = np.asarray(features, dtype=np.float64)
    if distance == "hik":
        query, features = features_l1_normalise(query), features_l1_normalise(features)
    return distances(features, query, metric=distance, device="numpy")[0]


@register_method("occlusion")
class Occlusion(SimilaritySaliency):
    """Sliding-window occlusion with the mean colour; see the module docstring.

    Parameters
    ----------
    window : int, default 32
        Side of the occluded square in pixels (the seed's windows cover about 12 % of the
        image: 78 px at 224 px; 32 gives finer maps).
    stride : int, default 16
        Step of the window in pixels, ``1 <= stride <= window``; the last window of each axis
        is flush with the border (:func:`explain.masks.axis_starts`).
    distance : {"hik", "l2", "cosine"}, default "hik"
        As in :func:`retrieval.search.distances`; for "hik" the embeddings are L1-normalised
        first (they must be non-negative).
    batch_size : int, default 64
        Occluded images per forward pass.
    precision : {"fp32", "tf32", "bf16"}, default "fp32"
        Arithmetic of the forward passes (:mod:`explain.precision`).

    Notes
    -----
    :meth:`explain` returns maps of shape (n_results, H, W), float32, >= 0, in units of the
    distance: the mean increase of the distance over the windows covering each pixel.

    Raises
    ------
    ValueError
        On an argument out of range (at construction), or in :meth:`explain` if ``window`` is
        larger than a side of the images.
    """

    def __init__(
        self,
        window: int = 32,
        stride: int = 16,
        distance: str = "hik",
        batch_size: int = 64,
        precision: str = "fp32",
    ) -> None:
        try:
            self.window, self.stride = check_block_stride(window, stride)
        except ValueError as exc:
            raise ValueError(str(exc).replace("block", "window")) from None
        self.distance = check_distance(distance)
        self.batch_size = check_batch_size(batch_size)
        self.precision = check_precision(precision)

    def _explain(self, embed: Embed, query: torch.Tensor, results: torch.Tensor) -> np.ndarray:
        height, width = (int(v) for v in results.shape[2:])
        if self.window > min(height, width):
            raise ValueError(f"window ({self.window}) is larger than the images ({height}x{width})")
        device = embed_device(embed, results.device)
        query_embedding = embed_in_batches(embed, query[None].to(device), self.batch_size)[0]
        result_embeddings = embed_in_batches(embed, results.to(device), self.batch_size)
        positions = block_positions(height, width, block=self.window, stride=self.stride)
        cover_rows = axis_cover(height, block=self.window, stride=self.stride)
        cover_cols = axis_cover(width, block=self.window, stride=self.stride)
        counts = np.outer(cover_rows.sum(axis=1), cover_cols.sum(axis=1))
        w = self.window
        maps = np.empty((results.shape[0], height, width), dtype=np.float32)
        for i, result in enumerate(results.to(device)):
            occluded = np.empty((len(positions), result_embeddings.shape[1]), dtype=np.float32)
            # At most batch_size occluded copies of the image exist at any time.
            for start in range(0, len(positions), self.batch_size):
                chunk = positions[start : start + self.batch_size]
                batch = result.unsqueeze(0).repeat(len(chunk), 1, 1, 1)
                for j, (top, left) in enumerate(chunk.tolist()):
                    batch[j, :, top : top + w, left : left + w] = 0.0  # the mean colour
                occluded[start : start + len(chunk)] = embed_in_batches(
                    embed, batch, self.batch_size
                )
            base = query_distances(query_embedding, result_embeddings[i : i + 1], self.distance)
            drop = np.maximum(query_distances(query_embedding, occluded, self.distance) - base, 0)
            grid = drop.reshape(cover_rows.shape[1], cover_cols.shape[1])
            # Each window's score on all its pixels, averaged over the windows covering a pixel;
            # separable because the windows lie on a grid (see explain.masks).
            maps[i] = (cover_rows @ grid @ cover_cols.T) / counts
        return maps
