"""Exact k-nearest-neighbour search over an archive of image features.

Seed 000 ranks the archive by the histogram-intersection distance to the query,
``d(q, x) = 1 - sum_d min(q_d, x_d)`` (for L1-normalised vectors this is half their L1
distance); "l2" and "cosine" are offered beside it for the explanation methods and for checks.

The search is a brute-force scan, exact by construction. ``features`` may be a read-only
``np.memmap`` of the whole archive (123,000 x 2,048 float32, 1 GB): rows are read in chunks of
``chunk_rows`` so that memory stays bounded by a few chunks per worker thread plus one distance
per searched row; no ``(n_images, n_dims)`` temporary is ever made.

Backends
--------
* numpy (the default on a machine without CUDA): the rows are split into one block per core and
  each block is scanned by its own thread (numpy releases the GIL inside ufuncs); chunks are
  small enough (64 rows, 512 KB) that the element-wise temporary stays in the core's L2 cache,
  so the scan costs about two streaming passes over the bytes, not three.
* torch (``device="cuda"`` or ``"cpu"``; the default when CUDA is available): each chunk is
  copied to the device and reduced there; only the distances come back. Features kept on the
  device by :class:`retrieval.resident.ResidentFeatures` are read in place instead (a gpu
  worker's archive: no copy per call).

Both compute in float32 for float32 features (float64 for float64 features); the selection of
the ``k`` smallest is done on the host with an exact tie rule (equal distances: lower row first).

No Django here (STYLE habit 9): the selectors call :func:`top_k` with arrays.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "METRICS",
    "check_k",
    "check_rows",
    "distances",
    "run_in_row_blocks",
    "top_k",
    "top_k_batch",
]

#: The supported metrics: histogram intersection (seed 000), Euclidean, cosine.
METRICS: tuple[str, ...] = ("hik", "l2", "cosine")

# 64 rows x 2,048 float32 = 512 KB: the chunk and its temporary fit in one core's L2 (1 MB).
DEFAULT_CHUNK_ROWS = 64
# The torch backend moves chunks to the device; larger chunks amortise the launch overhead.
DEFAULT_TORCH_CHUNK_ROWS = 8192


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _check_features(features: ArrayLike) -> np.ndarray:
    if not hasattr(features, "shape") or not hasattr(features, "dtype"):
        features = np.asarray(features)
    if len(features.shape) != 2:
        raise ValueError(f"features must be 2-D (n_images, n_dims), got shape {features.shape}")
    if features.shape[1] < 1:
        raise ValueError("features must have at least one dimension")
    if not np.issubdtype(features.dtype, np.number) or np.issubdtype(
        features.dtype, np.complexfloating
    ):
        raise ValueError(f"features must be real numbers, got dtype {features.dtype}")
    return features


def _compute_dtype(features: np.ndarray) -> np.dtype:
    return np.dtype(np.float64) if features.dtype == np.float64 else np.dtype(np.float32)


def _check_queries(queries: ArrayLike, n_dims: int, dtype: np.dtype) -> np.ndarray:
    queries = np.asarray(queries)
    if queries.ndim != 2 or queries.shape[1] != n_dims:
        raise ValueError(f"queries must have shape (n_queries, {n_dims}), got {queries.shape}")
    if not np.issubdtype(queries.dtype, np.number) or np.issubdtype(
        queries.dtype, np.complexfloating
    ):
        raise ValueError(f"queries must be real numbers, got dtype {queries.dtype}")
    queries = np.ascontiguousarray(queries, dtype=dtype)
    if not np.isfinite(queries).all():
        raise ValueError("queries must be finite (no NaN or infinity)")
    return queries


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    return metric


def check_k(k: int) -> int:
    """``k`` as an int; ``ValueError`` unless it is an integer >= 1."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def _check_chunk_rows(chunk_rows: int | None, default: int) -> int:
    if chunk_rows is None:
        return default
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)):
        raise ValueError(f"chunk_rows must be an integer >= 1, got {chunk_rows!r}")
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    return int(chunk_rows)


def check_rows(name: str, rows: Iterable[int] | ArrayLike | None, n_rows: int) -> np.ndarray:
    """Validate row indices into an archive of ``n_rows`` rows.

    Parameters
    ----------
    name : str
        What the rows are, for the error message ("exclude", "positives", ...).
    rows : iterable of int, array-like of int, or None
        Row indices; ``None`` means none.
    n_rows : int
        Number of rows of the archive.

    Returns
    -------
    ndarray of shape (n,), int64
        The distinct rows, sorted ascending.

    Raises
    ------
    ValueError
        If ``rows`` is not a 1-D collection of integers, or names rows outside ``[0, n_rows)``
        (the message lists up to ten of them).
    """
    if rows is None:
        return np.empty(0, dtype=np.int64)
    if not isinstance(rows, np.ndarray):
        rows = np.asarray(list(rows) if not hasattr(rows, "__array__") else rows)
    if rows.size == 0:
        return np.empty(0, dtype=np.int64)
    if rows.ndim != 1:
        raise ValueError(f"{name} must be a 1-D collection of row indices, got shape {rows.shape}")
    if rows.dtype == np.bool_ or not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"{name} must hold integer row indices, got dtype {rows.dtype}")
    rows = rows.astype(np.int64, copy=False)
    bad = rows[(rows < 0) | (rows >= n_rows)]
    if bad.size:
        shown = ", ".join(str(int(row)) for row in np.unique(bad)[:10])
        raise ValueError(
            f"{name} holds rows outside [0, {n_rows}): {shown}"
            + (" ..." if np.unique(bad).size > 10 else "")
        )
    return np.unique(rows)


# --------------------------------------------------------------------------------------------
# Distances, chunk by chunk
# --------------------------------------------------------------------------------------------


def _numpy_chunk_distances(
    chunk: np.ndarray, queries: np.ndarray, metric: str, out: np.ndarray, scratch: np.ndarray
) -> None:
    """Distances of ``chunk`` (m, D) to ``queries`` (Q, D) into ``out`` (Q, m); in place."""
    m = chunk.shape[0]
    tmp = scratch[:m]
    if metric == "cosine":
        norms = np.sqrt(np.einsum("ij,ij->i", chunk, chunk, dtype=chunk.dtype))
    for j, query in enumerate(queries):
        if metric == "hik":
            # seed 000: d = 1 - sum_d min(q_d, x_d)
            np.minimum(chunk, query, out=tmp)
            np.subtract(1, np.add.reduce(tmp, axis=1), out=out[j])
        elif metric == "l2":
            np.subtract(chunk, query, out=tmp)
            np.multiply(tmp, tmp, out=tmp)
            np.sqrt(np.add.reduce(tmp, axis=1), out=out[j])
        else:
            np.multiply(chunk, query, out=tmp)
            dots = np.add.reduce(tmp, axis=1)
            q_norm = np.sqrt(np.dot(query, query))
            denominator = norms * q_norm
            # A zero vector has no direction: its similarity to anything is 0 (distance 1), as
            # in scikit-learn's cosine_distances.
            safe = np.where(denominator > 0, denominator, 1)
            np.subtract(1, np.where(denominator > 0, dots / safe, 0), out=out[j])


def _torch_chunk_distances(chunk, queries, metric: str):
    """Torch twin of :func:`_numpy_chunk_distances`: (m, D) x (Q, D) -> (Q, m) on the device."""
    import torch

    if metric == "hik":
        rows = [1 - torch.minimum(chunk, query).sum(dim=1) for query in queries]
    elif metric == "l2":
        rows = [torch.sqrt(((chunk - query) ** 2).sum(dim=1)) for query in queries]
    else:
        norms = torch.sqrt((chunk * chunk).sum(dim=1))
        rows = []
        for query in queries:
            denominator = norms * torch.sqrt((query * query).sum())
            dots = (chunk * query).sum(dim=1)
            safe = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
            rows.append(1 - torch.where(denominator > 0, dots / safe, torch.zeros_like(dots)))
    return torch.stack(rows)


def _read_rows(features: np.ndarray, rows: np.ndarray | None, start: int, stop: int, dtype):
    """Rows ``start:stop`` of the searched set (all rows, or the ``rows`` subset) as ``dtype``."""
    chunk = features[start:stop] if rows is None else features[rows[start:stop]]
    return np.asarray(chunk, dtype=dtype)


def _resolve_device(device):
    if device is None:
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a project dependency
            return None
        return torch.device("cuda") if torch.cuda.is_available() else None
    if isinstance(device, str) and device == "numpy":
        return None
    import torch

    return torch.device(device)


def distances(
    features: ArrayLike,
    queries: ArrayLike,
    *,
    metric: str = "hik",
    rows: Iterable[int] | ArrayLike | None = None,
    chunk_rows: int | None = None,
    device=None,
) -> np.ndarray:
    """Distances from each query to every searched row, read in chunks.

    Parameters
    ----------
    features : ndarray or np.memmap of shape (n_images, n_dims)
        Archive features (for "hik": non-negative, L1-normalised rows). Read-only access.
    queries : array-like of shape (n_queries, n_dims) or (n_dims,)
        Query features; must be finite.
    metric : {"hik", "l2", "cosine"}
        "hik": ``1 - sum_d min(q_d, x_d)`` (seed 000); "l2": Euclidean; "cosine":
        ``1 - q.x / (|q| |x|)``, 1 when either vector is zero.
    rows : array-like of int, optional
        Rows to compute (in the order given, after removing duplicates and sorting); all rows
        when omitted.
    chunk_rows : int, optional
        Rows read per step (default 64 on the numpy backend, 8,192 on torch).
    device : None, "numpy", "cpu", "cuda" or torch.device
        None: CUDA when available, else numpy threads.

    Returns
    -------
    ndarray of shape (n_queries, n_searched) or (n_searched,)
        float32 (float64 for float64 features); 1-D when ``queries`` was 1-D. Column ``j`` is
        the ``j``-th searched row (sorted ascending when ``rows`` is given).

    Raises
    ------
    ValueError
        Bad shapes, an unknown metric, non-finite queries or distances, out-of-range rows.
    """
    features = _check_features(features)
    single = np.ndim(queries) == 1
    dtype = _compute_dtype(features)
    queries = _check_queries(np.atleast_2d(queries), features.shape[1], dtype)
    _check_metric(metric)
    searched = None if rows is None else check_rows("rows", rows, features.shape[0])
    result = _distances(features, queries, metric, searched, chunk_rows, device)
    return result[0] if single else result


def _distances(features, queries, metric, rows, chunk_rows, device) -> np.ndarray:
    dtype = _compute_dtype(features)
    n_searched = features.shape[0] if rows is None else rows.size
    out = np.empty((queries.shape[0], n_searched), dtype=dtype)
    if n_searched == 0:
        return out
    torch_device = _resolve_device(device)
    if torch_device is None:
        step = _check_chunk_rows(chunk_rows, DEFAULT_CHUNK_ROWS)
        _numpy_scan(features, queries, metric, rows, step, out)
    else:
        step = _check_chunk_rows(chunk_rows, DEFAULT_TORCH_CHUNK_ROWS)
        _torch_scan(features, queries, metric, rows, step, out, torch_device)
    bad = ~np.isfinite(out)
    if bad.any():
        columns = np.unique(np.nonzero(bad)[1])
        offending = columns if rows is None else rows[columns]
        shown = ", ".join(str(int(row)) for row in offending[:10])
        raise ValueError(f"features hold non-finite values (NaN or infinity) in rows {shown}")
    return out


def _numpy_scan(features, queries, metric, rows, step, out) -> None:
    dtype = out.dtype

    def scan(block_start: int, block_stop: int) -> None:
        scratch = np.empty((step, features.shape[1]), dtype=dtype)
        for start in range(block_start, block_stop, step):
            stop = min(start + step, block_stop)
            chunk = _read_rows(features, rows, start, stop, dtype)
            _numpy_chunk_distances(chunk, queries, metric, out[:, start:stop], scratch)

    run_in_row_blocks(out.shape[1], step, scan)


def run_in_row_blocks(n_rows: int, step: int, scan: Callable[[int, int], None]) -> None:
    """Run ``scan(start, stop)`` over ``[0, n_rows)`` split into one block per core.

    Blocks are contiguous and hold at least ``step`` rows (fewer blocks for small inputs); with
    more than one block each runs in its own thread. For numpy work, which releases the GIL
    inside ufuncs and ``take``, this uses all cores. Exceptions propagate to the caller.
    """
    n_blocks = max(1, min(os.cpu_count() or 1, -(-n_rows // max(1, step))))
    bounds = np.linspace(0, n_rows, n_blocks + 1).astype(np.int64)
    blocks = [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]
    if len(blocks) <= 1:
        for block in blocks:
            scan(*block)
        return
    with ThreadPoolExecutor(max_workers=len(blocks)) as pool:
        for future in [pool.submit(scan, a, b) for a, b in blocks]:
            future.result()


def _torch_scan(features, queries, metric, rows, step, out, device) -> None:
    import torch

    torch_queries = torch.from_numpy(queries).to(device)
    # Features resident on this device (retrieval.resident) are read in place: no copy.
    resident = hasattr(features, "device_rows") and features.on(device)
    with torch.no_grad():
        for start in range(0, out.shape[1], step):
            stop = min(start + step, out.shape[1])
            if resident:
                chunk = features.device_rows(start, stop, rows).to(torch_queries.dtype)
            else:
                # A copy: memmap slices are read-only, and the chunk goes to the device anyway.
                chunk = torch.from_numpy(
                    np.array(_read_rows(features, rows, start, stop, out.dtype))
                ).to(device)
            result = _torch_chunk_distances(chunk, torch_queries, metric)
            out[:, start:stop] = result.cpu().numpy()


# --------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------


def _smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` smallest ``values``, ascending, ties by lower position."""
    if k < values.size:
        kth = np.partition(values, k - 1)[k - 1]
        positions = np.flatnonzero(values <= kth)
    else:
        positions = np.arange(values.size)
    # A stable sort of positions already in ascending order breaks ties by lower position.
    order = np.argsort(values[positions], kind="stable")
    return positions[order[:k]]


def _searched_rows(n_rows: int, exclude, candidates) -> tuple[np.ndarray | None, np.ndarray]:
    """(rows to read or None for all, eligible mask over the rows read)."""
    excluded = check_rows("exclude", exclude, n_rows)
    if candidates is None:
        eligible = np.ones(n_rows, dtype=bool)
        eligible[excluded] = False
        return None, eligible
    rows = check_rows("candidates", candidates, n_rows)
    rows = rows[~np.isin(rows, excluded)]
    return rows, np.ones(rows.size, dtype=bool)


def top_k_batch(
    features: ArrayLike,
    queries: ArrayLike,
    k: int,
    *,
    metric: str = "hik",
    exclude: Iterable[int] | ArrayLike | None = None,
    candidates: Iterable[int] | ArrayLike | None = None,
    chunk_rows: int | None = None,
    device=None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows to each of several queries, in one pass over ``features``.

    Each chunk of rows is read once and compared with every query while it is in cache, so ``Q``
    queries cost one read of the archive, not ``Q``. Parameters as in :func:`top_k`, with
    ``queries`` of shape (n_queries, n_dims); ``exclude`` and ``candidates`` apply to all.

    Returns
    -------
    rows : ndarray of shape (n_queries, k'), int64
    distances : ndarray of shape (n_queries, k'), float32 (float64 for float64 features)
        Per query, ascending distance, ties by lower row; ``k' = min(k, n_eligible)``.
    """
    features = _check_features(features)
    dtype = _compute_dtype(features)
    queries = np.asarray(queries)
    if queries.ndim != 2:
        raise ValueError(f"queries must be 2-D (n_queries, n_dims), got shape {queries.shape}")
    queries = _check_queries(queries, features.shape[1], dtype)
    _check_metric(metric)
    k = check_k(k)
    rows, eligible = _searched_rows(features.shape[0], exclude, candidates)
    n_eligible = int(eligible.sum())
    k_out = min(k, n_eligible)
    found = np.empty((queries.shape[0], k_out), dtype=np.int64)
    found_distances = np.empty((queries.shape[0], k_out), dtype=dtype)
    if k_out == 0:
        return found, found_distances
    all_distances = _distances(features, queries, metric, rows, chunk_rows, device)
    eligible_positions = None if eligible.all() else np.flatnonzero(eligible)
    for j, row_distances in enumerate(all_distances):
        values = row_distances if eligible_positions is None else row_distances[eligible]
        positions = _smallest(values, k_out)
        if eligible_positions is not None:
            positions = eligible_positions[positions]
        found[j] = positions if rows is None else rows[positions]
        found_distances[j] = row_distances[positions]
    return found, found_distances


def top_k(
    features: ArrayLike,
    query: ArrayLike,
    k: int,
    *,
    metric: str = "hik",
    exclude: Iterable[int] | ArrayLike | None = None,
    candidates: Iterable[int] | ArrayLike | None = None,
    chunk_rows: int | None = None,
    device=None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``features`` to ``query``, exactly.

    Parameters
    ----------
    features : ndarray or np.memmap of shape (n_images, n_dims)
        Archive features, float32 (or float64); for "hik" non-negative rows summing to 1 (ResNet50
        avgpool, L1-normalised, seed 000). Read in chunks; never copied whole.
    query : array-like of shape (n_dims,)
        The query's feature vector (need not be an archive row); must be finite.
    k : int
        Number of neighbours wanted, >= 1.
    metric : {"hik", "l2", "cosine"}
        "hik" (default, the study's): ``1 - sum_d min(q_d, x_d)``, in [0, 1] for L1-normalised
        rows and equal to half their L1 distance; "l2": Euclidean; "cosine": ``1 - cos``.
    exclude : array-like of int, optional
        Rows never returned (e.g. the query's own row, already judged images).
    candidates : array-like of int, optional
        When given, only these rows are searched (conditional retrieval); duplicates are ignored.
    chunk_rows : int, optional
        Rows read per step; bounds memory at about ``n_threads x chunk_rows x n_dims`` values plus
        one distance per searched row.
    device : None, "numpy", "cpu", "cuda" or torch.device
        None: CUDA when available, else numpy threads over the cores. "cpu"/"cuda": torch.

    Returns
    -------
    rows : ndarray of shape (k',), int64
        Row indices, by increasing distance, ties broken by lower row; ``k' = min(k, n_eligible)``
        where eligible rows are the candidates (or all rows) minus ``exclude``.
    distances : ndarray of shape (k',), float32 (float64 for float64 features)
        Their distances to ``query``.

    Raises
    ------
    ValueError
        ``features`` not 2-D, ``query`` of the wrong length or not finite, unknown ``metric``,
        ``k < 1``, ``exclude``/``candidates`` rows out of range, non-finite distances (NaN in
        ``features``), ``chunk_rows < 1``.
    """
    query = np.asarray(query)
    if query.ndim != 1:
        raise ValueError(f"query must be 1-D (n_dims,), got shape {query.shape}")
    rows, found_distances = top_k_batch(
        features,
        query[None, :],
        k,
        metric=metric,
        exclude=exclude,
        candidates=candidates,
        chunk_rows=chunk_rows,
        device=device,
    )
    return rows[0], found_distances[0]
