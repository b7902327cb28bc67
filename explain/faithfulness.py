"""Interpret-and-censor faithfulness of saliency maps (seed 003: Hamilton et al.).

A saliency map claims that some pixels of a result make it similar to the query. Censoring the
map's top ``fraction`` of pixels (seed 003 uses the top 20%) and embedding the censored result
again tests the claim: if the map is faithful, the similarity to the query drops. The score of
one query/result pair is::

    score = s(f(Q), f(A)) - s(f(Q), f(A censored))

so a *positive* score is a drop, and a larger drop means a more faithful map. The censored image
is the one the map covers: the result (``side="result"``, SBSM's maps, seed 000) or, as seed 003's
marginal evaluation does (its Figure 5), the query (``side="query"``: one map over the query per
pair, ``score_i = s(f(Q), f(A_i)) - s(f(Q censored by map i), f(A_i))``). The same censoring
of a random ``fraction`` of the pixels (:func:`random_censor_baseline`) is the reference a map
has to beat: any censoring moves the embedding a little.

Similarity ``s`` per ``distance`` (the distances are those of :func:`retrieval.search.distances`):

* ``"hik"``: ``1 - d_hik`` = ``sum_d min(q_d, x_d)`` on L1-normalised features (non-negative
  features required), in [0, 1];
* ``"cosine"``: ``1 - d_cos`` = the cosine similarity, in [-1, 1] (0 for a zero vector);
* ``"l2"``: ``-d_l2``, the negated Euclidean distance, in (-inf, 0], in feature units.

Censored pixels are filled in normalised image units: ``fill="mean"`` writes 0, the dataset mean
after ``(pixel - mean) / std``; ``fill="zero_pixel"`` writes ``(0 - mean) / std``, a black pixel.

No Django here (STYLE habit 9).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from explain.base import Embed, SimilaritySaliency, embed_device, embed_in_batches
from retrieval.backbones import features_l1_normalise
from retrieval.search import METRICS, distances

__all__ = ["CENSOR_FILLS", "censor_scores", "random_censor_baseline"]

#: Values of the censored pixels: the dataset mean (0 after normalisation), or pixel value 0.
CENSOR_FILLS: tuple[str, ...] = ("mean", "zero_pixel")
_SIDES = ("result", "query")

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def censor_scores(
    embed: Embed,
    query: torch.Tensor,
    results: torch.Tensor,
    maps: np.ndarray,
    *,
    fraction: float = 0.2,
    distance: str = "hik",
    fill: str = "mean",
    mean: Sequence[float] = _IMAGENET_MEAN,
    std: Sequence[float] = _IMAGENET_STD,
    batch_size: int = 64,
    side: str = "result",
) -> np.ndarray:
    """Drop in similarity to the query when each map's most salient pixels are censored.

    Parameters
    ----------
    embed : callable
        Maps a float tensor of shape (B, 3, H, W) to features of shape (B, D); called in
        ``torch.inference_mode`` on the device of its weights (an ``nn.Module``, or an object
        with a ``model`` module such as ``retrieval.backbones.Backbone``).
    query : Tensor of shape (3, H, W), floating, finite
        The query image, preprocessed as ``embed`` expects.
    results : Tensor of shape (n_results, 3, H, W), floating, finite
        The result images, preprocessed likewise; same H and W as the query.
    maps : array-like of shape (n_results, H, W), finite
        One saliency map per (query, result) pair (higher = more important): over the result
        (``side="result"``, as :meth:`explain.base.SimilaritySaliency.explain` returns) or over
        the query (``side="query"``). Only the order of the values matters.
    fraction : float in (0, 1), default 0.2
        Share of each result's pixels to censor (seed 003: the top 20%):
        ``max(1, round(fraction * H * W))`` pixels. Ties in the map are broken by pixel
        position, row-major, earlier pixel first, so the result is deterministic.
    distance : {"hik", "cosine", "l2"}, default "hik"
        Which similarity to compare; see the module docstring.
    fill : {"mean", "zero_pixel"}, default "mean"
        What the censored pixels become (all three channels); see the module docstring.
    mean, std : 3 floats, default ImageNet's
        The normalisation the images went through, in [0, 1] pixel units; only used by
        ``fill="zero_pixel"``.
    batch_size : int, default 64
        Censored images per forward pass.
    side : {"result", "query"}, default "result"
        Which image of each pair the map covers and is censored (seed 003 censors the query).

    Returns
    -------
    ndarray of shape (n_results,), float64
        ``similarity(query, result) - similarity(censored pair)``: positive when censoring
        lowers the similarity. Units of the similarity (see ``distance``).

    Raises
    ------
    ValueError
        Bad image shapes or dtypes, ``maps`` not of shape (n_results, H, W) or not finite,
        ``fraction`` outside (0, 1), an unknown ``distance`` or ``fill``, ``embed`` not
        returning (B, D) finite features, negative features with ``distance="hik"``, or an
        unknown ``side``.
    """
    fraction = _check_fraction(fraction)
    SimilaritySaliency._check_inputs(embed, query, results)
    maps = _check_maps(maps, results)
    if side not in _SIDES:
        raise ValueError(f"side must be one of {_SIDES}, got {side!r}")
    return _censor(
        embed,
        query,
        results,
        maps,
        fraction=fraction,
        distance=distance,
        fill=fill,
        mean=mean,
        std=std,
        batch_size=batch_size,
        side=side,
    )


def random_censor_baseline(
    embed: Embed,
    query: torch.Tensor,
    results: torch.Tensor,
    *,
    fraction: float = 0.2,
    distance: str = "hik",
    fill: str = "mean",
    seed: int = 0,
    repeats: int = 1,
    mean: Sequence[float] = _IMAGENET_MEAN,
    std: Sequence[float] = _IMAGENET_STD,
    batch_size: int = 64,
) -> np.ndarray:
    """:func:`censor_scores` with a uniformly random ``fraction`` of the pixels censored.

    The reference a saliency map must beat. Parameters, return value and errors as in
    :func:`censor_scores`, plus:

    seed : int >= 0, default 0
        Seed of ``np.random.default_rng``; the same seed gives the same pixels and scores.
    repeats : int >= 1, default 1
        Independent random censorings per result; the scores are their mean (each result is
        embedded ``repeats`` times).

    Returns
    -------
    ndarray of shape (n_results,), float64
        Mean drop in similarity over the ``repeats`` random censorings of each result.
    """
    fraction = _check_fraction(fraction)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    SimilaritySaliency._check_inputs(embed, query, results)
    rng = np.random.default_rng(seed)
    n, height, width = results.shape[0], *results.shape[2:]
    total = np.zeros(n, dtype=np.float64)
    for _ in range(repeats):
        # Random scores have no ties (almost surely), so the top pixels are a uniform draw.
        maps = rng.random((n, height, width))
        total += _censor(
            embed,
            query,
            results,
            maps,
            fraction=fraction,
            distance=distance,
            fill=fill,
            mean=mean,
            std=std,
            batch_size=batch_size,
        )
    return total / repeats


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


def _check_fraction(fraction: float) -> float:
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or not math.isfinite(fraction)
        or not 0 < fraction < 1
    ):
        raise ValueError(f"fraction must be a number in (0, 1), got {fraction!r}")
    return float(fraction)


def _check_maps(maps: np.ndarray, results: torch.Tensor) -> np.ndarray:
    expected = (results.shape[0], *results.shape[2:])
    array = np.asarray(maps)
    if array.shape != expected:
        raise ValueError(
            f"maps must have shape {expected} (one map per result, over its pixels), "
            f"got {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"maps must be real numbers, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError("maps hold NaN or infinite values")
    return array


def _fill_values(fill: str, mean, std, dtype, device) -> torch.Tensor:
    """Per-channel value of a censored pixel, shape (3, 1), in normalised units."""
    if fill == "mean":
        return torch.zeros((3, 1), dtype=dtype, device=device)
    if fill == "zero_pixel":
        values = [float(-m / s) for m, s in zip(mean, std, strict=True)]
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            raise ValueError(f"mean and std must be 3 finite numbers, got {mean!r}, {std!r}")
        return torch.tensor(values, dtype=dtype, device=device)[:, None]
    raise ValueError(f"unknown fill {fill!r}; valid: {list(CENSOR_FILLS)}")


def _similarity(query: np.ndarray, rows: np.ndarray, distance: str) -> np.ndarray:
    """Similarity of each row (n, D) to ``query`` (D,), float64, as in the module docstring."""
    if distance == "hik":
        # The study compares L1-normalised histograms (seed 000).
        query = features_l1_normalise(query[None])[0]
        rows = features_l1_normalise(rows)
    d = distances(rows, query, metric=distance, device="numpy")
    return -d if distance == "l2" else 1.0 - d


def _censor(
    embed, query, results, maps, *, fraction, distance, fill, mean, std, batch_size, side="result"
) -> np.ndarray:
    if distance not in METRICS:
        raise ValueError(f"unknown distance {distance!r}; valid: {list(METRICS)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    device = embed_device(embed, results.device)
    results = results.to(device)
    query = query.to(device)
    n, channels, height, width = results.shape
    fill_values = _fill_values(fill, mean, std, results.dtype, device)
    n_censored = max(1, round(fraction * height * width))
    flat_maps = np.asarray(maps).reshape(n, height * width)
    # the image each map covers: the result of its pair, or the query (seed 003, Figure 5)
    covered = results if side == "result" else query[None].expand(n, -1, -1, -1)
    censored = covered.clone().reshape(n, channels, height * width)
    for i in range(n):
        # Highest values first; a stable sort of the negated map keeps equal values in pixel
        # order, so ties go to the earlier (row-major) pixel.
        top = np.argsort(-flat_maps[i], kind="stable")[:n_censored]
        index = torch.as_tensor(top, device=device)
        censored[i][:, index] = fill_values
    censored = censored.reshape(n, channels, height, width)
    features = embed_in_batches(
        embed, torch.cat([query[None], results, censored]), batch_size
    ).astype(np.float64)
    query_features, before, after = features[0], features[1 : n + 1], features[n + 1 :]
    if side == "result":
        return _similarity(query_features, before, distance) - _similarity(
            query_features, after, distance
        )
    after_pairs = np.array(
        [_similarity(after[i], before[i : i + 1], distance)[0] for i in range(n)]
    )
    return _similarity(query_features, before, distance) - after_pairs
