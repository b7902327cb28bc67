"""Similarity-Based Saliency Maps, SBSM (seed 000: Dong, Collins, Hoogs 2019, Eq. 1-4).

For a query ``Q``, a result ``A``, an embedding ``f``, a distance ``d`` and the sliding-block
masks ``m_i`` of :mod:`explain.masks` (1 = kept, 0 = occluded)::

    D    = d(f(Q), f(A))                         (Eq. 3)
    D'_i = d(f(Q), f(A (.) m_i))                 (Eq. 2)
    K_i  = max(D'_i - D, 0) * (1 - m_i)          (Eq. 1)
    SBSM = sum_i K_i / sum_i (1 - m_i)           (Eq. 4)

so a pixel's value is the mean, over the blocks covering it, of how much occluding the block
pushes the result away from the query. The occluded block is filled with ``fill`` rather than
literally multiplied by 0 (see :class:`Sbsm`); ``fill="zero_pixel"`` is the paper's product.

Reuse across queries
--------------------
The expensive part, ``f(A (.) m_i)`` for every mask, does not depend on the query. So the work is
split in two, and :meth:`Sbsm.explain` itself goes through both halves:

* :meth:`Sbsm.masked_embeddings` runs the network: ``(n_masks, D)`` float32 per result image
  (2,704 forwards at 224 px with the paper's block 20, stride 4);
* :meth:`Sbsm.maps_from_embeddings` turns them into the map for any query embedding with a few
  matrix operations: one distance per mask, then the separable sums of Eq. 4.

The masked embeddings depend on ``block``, ``stride``, ``fill``, ``mean``, ``std`` and
``blur_sigma`` and on the network, never on ``distance`` or the query.

No Django here (STYLE habit 9).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike

from explain.base import Embed, SimilaritySaliency, embed_device, embed_in_batches
from explain.masks import axis_cover, block_positions, check_block_stride
from explain.precision import check_precision, compute_precision
from explain.registry import register_method
from retrieval.backbones import features_l1_normalise
from retrieval.search import METRICS, distances

__all__ = ["FILLS", "Sbsm"]

#: Values of the occluded block: 0 in pixel space (the paper), the dataset mean, a blur.
FILLS: tuple[str, ...] = ("zero_pixel", "mean", "blur")

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_channels(name: str, values: Sequence[float], *, positive: bool) -> tuple[float, ...]:
    try:
        floats = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 3 numbers, got {values!r}") from None
    if len(floats) != 3 or not all(math.isfinite(v) for v in floats):
        raise ValueError(f"{name} must be 3 finite numbers, got {values!r}")
    if positive and min(floats) <= 0:
        raise ValueError(f"{name} must be > 0, got {values!r}")
    return floats


@register_method("sbsm")
class Sbsm(SimilaritySaliency):
    """SBSM with sliding square blocks.

    Parameters
    ----------
    block : int, default 20
        Side of the occluded square in pixels (the paper: 20 at 224 px).
    stride : int, default 4
        Step of the sliding block in pixels, ``1 <= stride <= block`` (the paper: 4).
    distance : {"hik", "l2", "cosine"}, default "hik"
        ``d`` of Eq. 2-3, as in :func:`retrieval.search.distances`. "hik" is the study's
        histogram-intersection distance ``1 - sum_d min(q_d, x_d)``; the embeddings are
        L1-normalised first (they must be non-negative, as the registered layers are).
    fill : {"zero_pixel", "mean", "blur"}, default "zero_pixel"
        What replaces the occluded block. The images are already normalised
        (``(pixel - mean) / std`` per channel), so "zero_pixel", the paper's ``A (.) m_i`` in
        pixel space, fills ``(0 - mean) / std``; "mean" fills 0, the dataset mean; "blur" fills
        the block with a Gaussian blur (``blur_sigma``) of the image itself.
    batch_size : int, default 64
        Masked images per forward pass; bounds the memory (``batch_size`` images at a time).
    mean, std : 3 floats, default ImageNet's
        The normalisation the images went through, in [0, 1] pixel units; only used by
        ``fill="zero_pixel"``. Pass the backbone's ``preprocess.mean``/``std``.
    blur_sigma : float, default 5.0
        Standard deviation in pixels of the Gaussian of ``fill="blur"`` (a quarter of the
        paper's block); the kernel is truncated at 3 sigma, borders replicated.
    precision : {"fp32", "tf32", "bf16"}, default "fp32"
        Arithmetic of the forward passes (:mod:`explain.precision`: true float32 by default;
        TF32 is 2.6x faster on an H200 with errors up to 3.7 % of a map's maximum). The
        masked embeddings depend on it.

    Raises
    ------
    ValueError
        On any argument out of range. The constructor checks its arguments so that a bad stored
        config fails when it is loaded, not in the middle of a precompute run.
    """

    reuses_masked_embeddings = True  # masked_embeddings + maps_from_embeddings (Eq. 2-4)

    def __init__(
        self,
        block: int = 20,
        stride: int = 4,
        distance: str = "hik",
        fill: str = "zero_pixel",
        batch_size: int = 64,
        mean: Sequence[float] = _IMAGENET_MEAN,
        std: Sequence[float] = _IMAGENET_STD,
        blur_sigma: float = 5.0,
        precision: str = "fp32",
    ) -> None:
        self.block, self.stride = check_block_stride(block, stride)
        if distance not in METRICS:
            raise ValueError(f"unknown distance {distance!r}; valid: {list(METRICS)}")
        self.distance = distance
        if fill not in FILLS:
            raise ValueError(f"unknown fill {fill!r}; valid: {list(FILLS)}")
        self.fill = fill
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.batch_size = batch_size
        self.mean = _check_channels("mean", mean, positive=False)
        self.std = _check_channels("std", std, positive=True)
        if (
            isinstance(blur_sigma, bool)
            or not isinstance(blur_sigma, int | float)
            or not math.isfinite(blur_sigma)
            or blur_sigma <= 0
        ):
            raise ValueError(f"blur_sigma must be a finite number > 0, got {blur_sigma!r}")
        self.blur_sigma = float(blur_sigma)
        self.precision = check_precision(precision)

    # ----------------------------------------------------------------------------------------
    # The whole method
    # ----------------------------------------------------------------------------------------

    def _explain(self, embed: Embed, query: torch.Tensor, results: torch.Tensor) -> np.ndarray:
        device = embed_device(embed, results.device)
        query_embedding = embed_in_batches(embed, query[None].to(device), self.batch_size)[0]
        # Eq. 3: f(A) once per result, all results in batches of batch_size.
        result_embeddings = embed_in_batches(embed, results.to(device), self.batch_size)
        image_shape = tuple(results.shape[2:])
        maps = np.empty((results.shape[0], *image_shape), dtype=np.float32)
        for i, result in enumerate(results):
            masked = self._masked_embeddings(embed, result.to(device))
            maps[i] = self.maps_from_embeddings(
                query_embedding, result_embeddings[i], masked, image_shape=image_shape
            )
        return maps

    # ----------------------------------------------------------------------------------------
    # Query-independent half: the network
    # ----------------------------------------------------------------------------------------

    def masked_embeddings(self, embed: Embed, result: torch.Tensor) -> np.ndarray:
        """``f(A (.) m_i)`` for every mask, in the order of :func:`explain.masks.block_positions`.

        Parameters
        ----------
        embed : callable
            As in :meth:`explain`; runs on its own device.
        result : Tensor of shape (3, H, W), floating, finite
            One preprocessed result image.

        Returns
        -------
        ndarray of shape (n_masks, D), float32
            Independent of the query and of ``distance``: compute once per result image and
            reuse for every query with :meth:`maps_from_embeddings`.
        """
        if not callable(embed):
            raise ValueError(f"embed must be callable, got {type(embed).__name__}")
        self._check_images("result", result, batched=False)
        device = embed_device(embed, result.device)
        with compute_precision(self.precision, device):
            return self._masked_embeddings(embed, result.to(device))

    def _masked_embeddings(self, embed: Embed, result: torch.Tensor) -> np.ndarray:
        height, width = result.shape[1:]
        positions = block_positions(height, width, block=self.block, stride=self.stride)
        fill = self._fill_image(result)
        b = self.block
        out: np.ndarray | None = None
        # Never all masks at once: at most batch_size masked images exist at any time.
        for start in range(0, len(positions), self.batch_size):
            chunk = positions[start : start + self.batch_size]
            batch = result.unsqueeze(0).repeat(len(chunk), 1, 1, 1)
            for j, (top, left) in enumerate(chunk.tolist()):
                batch[j, :, top : top + b, left : left + b] = fill[
                    :, top : top + b, left : left + b
                ]
            features = embed_in_batches(embed, batch, self.batch_size)
            if out is None:
                out = np.empty((len(positions), features.shape[1]), dtype=np.float32)
            out[start : start + len(chunk)] = features
        assert out is not None  # there is always at least one mask
        return out

    def _fill_image(self, result: torch.Tensor) -> torch.Tensor:
        """What the occluded pixels become, shape (3, H, W), in normalised units."""
        if self.fill == "mean":
            return torch.zeros_like(result)
        if self.fill == "zero_pixel":
            # Pixel value 0 after the per-channel normalisation (x - mean) / std.
            values = [-m / s for m, s in zip(self.mean, self.std, strict=True)]
            column = torch.tensor(values, dtype=result.dtype, device=result.device)
            return column[:, None, None].expand_as(result).clone()
        return self._blur(result)

    def _blur(self, image: torch.Tensor) -> torch.Tensor:
        # Blurring the normalised image equals normalising the blurred pixels: the kernel sums
        # to 1 and replicated borders commute with the per-channel affine normalisation.
        radius = max(1, math.ceil(3 * self.blur_sigma))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
        kernel = torch.exp(-0.5 * (offsets / self.blur_sigma) ** 2)
        kernel = (kernel / kernel.sum()).to(dtype=image.dtype, device=image.device)
        x = F.pad(image[None], (radius, radius, radius, radius), mode="replicate")
        x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
        x = F.conv2d(x, kernel.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
        return x[0]

    # ----------------------------------------------------------------------------------------
    # Query-dependent half: Eq. 1-4 from embeddings
    # ----------------------------------------------------------------------------------------

    def maps_from_embeddings(
        self,
        query_embedding: ArrayLike,
        result_embedding: ArrayLike,
        masked: ArrayLike,
        *,
        image_shape: tuple[int, int],
    ) -> np.ndarray:
        """SBSM maps from embeddings only (Eq. 1-4), without running the network.

        Parameters
        ----------
        query_embedding : array-like of shape (D,) or (n_queries, D)
            ``f(Q)``, one or several queries.
        result_embedding : array-like of shape (D,)
            ``f(A)``.
        masked : array-like of shape (n_masks, D)
            :meth:`masked_embeddings` of the result (float32, or float16 from a cache).
        image_shape : (H, W)
            Size of the result image the masked embeddings were computed on.

        Returns
        -------
        ndarray of shape (H, W), or (n_queries, H, W) for 2-D ``query_embedding``; float32
            Non-negative; 0 wherever no covering block increases the distance.

        Raises
        ------
        ValueError
            On mismatched shapes, non-finite values, a ``masked`` whose row count is not the
            number of masks for ``image_shape``, or negative embeddings with ``distance="hik"``.
        """
        height, width = (int(v) for v in image_shape)
        query = np.asarray(query_embedding, dtype=np.float64)
        single = query.ndim == 1
        query = np.atleast_2d(query)
        result = np.asarray(result_embedding, dtype=np.float64)
        masked = np.asarray(masked, dtype=np.float64)
        cover_rows = axis_cover(height, block=self.block, stride=self.stride)
        cover_cols = axis_cover(width, block=self.block, stride=self.stride)
        n_masks = cover_rows.shape[1] * cover_cols.shape[1]
        n_dims = result.shape[-1] if result.ndim == 1 else -1
        if result.ndim != 1 or query.ndim != 2 or query.shape[1] != n_dims:
            raise ValueError(
                f"need query (D,) or (n, D) and result (D,) embeddings, got {query.shape} "
                f"and {result.shape}"
            )
        if masked.shape != (n_masks, n_dims):
            raise ValueError(
                f"masked must have shape ({n_masks}, {n_dims}) for a {height}x{width} image with "
                f"block {self.block}, stride {self.stride}; got {masked.shape}"
            )
        for name, array in (("query", query), ("result", result), ("masked", masked)):
            if not np.isfinite(array).all():
                raise ValueError(f"{name} embeddings hold NaN or infinite values")
        if self.distance == "hik":
            # The study compares L1-normalised histograms (features_l1_normalise rejects
            # negative values, for which the intersection is meaningless).
            query, masked = features_l1_normalise(query), features_l1_normalise(masked)
            result = features_l1_normalise(result[None])[0]
        # Eq. 3 and Eq. 2, in float64 with the search's own definition of each distance.
        base = distances(result[None], query, metric=self.distance, device="numpy")[:, 0]
        occluded = distances(masked, query, metric=self.distance, device="numpy")
        # Eq. 1: only an increase of the distance counts.
        increase = np.maximum(occluded - base[:, None], 0.0)
        grid = increase.reshape(len(query), cover_rows.shape[1], cover_cols.shape[1])
        # Eq. 4, separable because the blocks lie on a grid: sum_i K_i(1 - m_i) = R K C^T and
        # sum_i (1 - m_i) = outer(R 1, C 1); a sum of non-negative terms, so exact zeros stay 0.
        totals = cover_rows @ grid @ cover_cols.T
        counts = np.outer(cover_rows.sum(axis=1), cover_cols.sum(axis=1))
        maps = (totals / counts).astype(np.float32)
        return maps[0] if single else maps
