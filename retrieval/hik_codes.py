"""The exact top-k of an HIK SVM over a whole archive, through uint8 codes and proven bounds.

Scoring every archive row exactly costs ``2 S D`` float64 operations per row (about 1.3 s for
123,000 x 2,048 on two cores, :mod:`retrieval._hik_kernel`), yet a worker sees only the first
``k`` results of a refine. This module finds those ``k`` rows, with the exact decision values,
by scoring every row approximately with a guaranteed error bound and only the few rows that the
bounds cannot rule out exactly.

The index (once per archive, :meth:`HikCodes.build`)
    Per dimension ``d``, ``B = 256`` buckets with edges ``e_(d,0) <= ... <= e_(d,B)``: ``e_0``
    and ``e_B`` the least and greatest value of the dimension, the interior edges the quantiles
    of a sample of rows. A value ``x`` gets the code ``c = #{1 <= j < B : e_(d,j) < x}``, so
    ``x`` lies in ``[e_(d,c), e_(d,c+1)]``; a run of equal values (the zeros of sparse ReLU
    features) gets a bucket ``[0, 0]`` of its own. The codes are stored dimension-major,
    ``(D, N)`` uint8: a quarter of the float32 features.

The bounds (per refine, :func:`bounded_top_k`)
    The decision function is additive, ``f(x) = b + sum_d h_d(x_d)`` with ``h_d`` continuous
    and piecewise linear (Maji, Berg, Malik, CVPR 2008, section 3; see
    :mod:`retrieval.hik_svm`), so over bucket ``c`` of dimension ``d`` it lies between its
    values at the bucket's ends and at the knots inside (``_hik_kernel.bucket_ranges``). With
    ``m`` the midpoint and ``r`` the half-width of that range, every row satisfies

        |f(x) - A(x)| <= R(x),    A(x) = b + sum_d m[d, c_d],    R(x) = sum_d r[d, c_d].

    ``m`` and ``r`` are written as fixed-point integers packed into one int64 per (dimension,
    bucket), ``m`` in the high 32 bits, ``r`` (non-negative) in the low 32, with their units
    chosen so that ``D`` terms cannot overflow either half: one table look-up and one integer
    addition per value then give both sums exactly (``_hik_kernel.table_sums``). Rounding the
    midpoints to the unit, the float64 evaluation of ``h_d``, and the exact kernel's own float64
    error (see :mod:`retrieval._hik_kernel`) are all added to ``r``, so the bound holds for the
    values the exact kernel returns.

The selection
    Let ``tau`` be the ``k``-th largest lower bound ``A - R`` among the eligible rows. At least
    ``k`` rows then have ``f >= tau``, so a row with ``A + R < tau`` is not among the ``k``
    best; the others (the candidates) are scored exactly with the fused kernel and the ``k``
    best of them, by decreasing value and then lower row, are the exact answer: the same rows
    and values as scoring every row exactly, not an approximation.

How many candidates remain depends on how wide the buckets are against the spread of the
decision values: on 123,000 random L1-normalised 2,048-d rows with 21 training images, a few
hundred. The scan reads one byte per value, a table of ``D x 256`` int64 (4 MB, one
dimension's 2 KB hot at a time) and ``N`` accumulators in blocks that stay in L1.

No Django here (STYLE habit 9); the services keep one index beside each feature file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .search import check_k, check_rows, run_in_row_blocks

__all__ = ["DEFAULT_BUCKETS", "HikCodes", "TopK", "bounded_top_k", "decision_bounds"]

#: Buckets per dimension: codes are uint8.
DEFAULT_BUCKETS = 256
_SAMPLE_ROWS = 16_384
_CHUNK_ROWS = 4096
# Rows checked against their stored codes before each use (a file of another archive, or
# features rewritten after the index was built, fail here instead of giving wrong bounds).
_SPOT_CHECKS = 16


def _kernels():
    try:
        from . import _hik_kernel
    except (ImportError, RuntimeError) as error:
        raise ImportError(
            f"HIK codes need the numba package (pip install numba): {error}"
        ) from error
    return _hik_kernel


def _check_features(features: ArrayLike) -> np.ndarray:
    if not hasattr(features, "shape") or not hasattr(features, "dtype"):
        features = np.asarray(features)
    if len(features.shape) != 2 or features.shape[0] < 1 or features.shape[1] < 1:
        raise ValueError(f"features must be 2-D (n_images, n_dims), got shape {features.shape}")
    if features.dtype not in (np.float32, np.float64):
        raise ValueError(f"features must be float32 or float64, got {features.dtype}")
    return features


def _contiguous(block: np.ndarray) -> np.ndarray:
    return block if block.flags.c_contiguous else np.ascontiguousarray(block)


@dataclass(frozen=True)
class HikCodes:
    """Per-dimension bucket codes of an archive's features.

    Attributes
    ----------
    edges : ndarray of shape (D, B + 1), float64
        Bucket edges per dimension, non-decreasing; ``edges[:, 0]`` and ``edges[:, B]`` are each
        dimension's least and greatest value in the archive.
    codes : ndarray or np.memmap of shape (D, N), uint8
        ``codes[d, i]``: the bucket of feature ``[i, d]`` (dimension-major).
    """

    edges: np.ndarray
    codes: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.codes.shape[1])

    @property
    def n_dims(self) -> int:
        return int(self.codes.shape[0])

    @classmethod
    def build(
        cls,
        features: ArrayLike,
        *,
        buckets: int = DEFAULT_BUCKETS,
        sample_rows: int = _SAMPLE_ROWS,
        seed: int = 0,
        out: np.ndarray | None = None,
    ) -> HikCodes:
        """Edges from the data, then the code of every value.

        Parameters
        ----------
        features : ndarray or np.memmap of shape (N, D), float32 or float64
            The archive's features (read in chunks; a memmap is fine).
        buckets : int, default 256
            Buckets per dimension, 2 to 256.
        sample_rows : int, default 16,384
            Rows (chosen with ``seed``) whose per-dimension quantiles give the interior edges.
        out : ndarray of shape (D, N), uint8, optional
            Where to write the codes (e.g. a memmap opened for writing); a new array otherwise.

        Raises
        ------
        ValueError
            Features that are not 2-D float32/float64, hold NaN or infinity (the rows are
            named), a bad ``buckets`` or ``out``.
        ImportError
            Without numba.
        """
        kernels = _kernels()
        features = _check_features(features)
        n_rows, n_dims = features.shape
        if isinstance(buckets, bool) or not isinstance(buckets, int) or not 2 <= buckets <= 256:
            raise ValueError(f"buckets must be an integer from 2 to 256, got {buckets!r}")
        if out is None:
            out = np.empty((n_dims, n_rows), dtype=np.uint8)
        elif out.shape != (n_dims, n_rows) or out.dtype != np.uint8:
            raise ValueError(f"out must be uint8 of shape {(n_dims, n_rows)}, got {out.shape}")
        low = np.full(n_dims, np.inf)
        high = np.full(n_dims, -np.inf)
        for start in range(0, n_rows, _CHUNK_ROWS):
            chunk = np.asarray(features[start : start + _CHUNK_ROWS])
            finite = np.isfinite(chunk).all(axis=1)
            if not finite.all():
                bad = ", ".join(str(start + int(i)) for i in np.flatnonzero(~finite)[:10])
                raise ValueError(f"features hold NaN or infinity in rows {bad}")
            np.minimum(low, chunk.min(axis=0), out=low)
            np.maximum(high, chunk.max(axis=0), out=high)
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.choice(n_rows, size=min(n_rows, sample_rows), replace=False))
        sample = np.asarray(features[picked], dtype=np.float64)
        edges = np.empty((n_dims, buckets + 1))
        edges[:, 1:-1] = np.quantile(sample, np.linspace(0, 1, buckets + 1)[1:-1], axis=0).T
        edges[:, 0] = low
        edges[:, -1] = high
        # Quantiles lie within the sample's range, hence within [low, high]; sorted per row.
        np.clip(edges, low[:, None], high[:, None], out=edges)
        edges = np.ascontiguousarray(np.maximum.accumulate(edges, axis=1))

        def encode(start: int, stop: int) -> None:
            for a in range(start, stop, _CHUNK_ROWS):
                b = min(stop, a + _CHUNK_ROWS)
                block = _contiguous(np.asarray(features[a:b]))
                kernels.encode_codes(block, 0, b - a, edges, out[:, a:b])

        run_in_row_blocks(n_rows, _CHUNK_ROWS, encode)
        return cls(edges=edges, codes=out)

    # ------------------------------------------------------------------ files

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``edges.npy`` and ``codes.npy`` into ``folder`` (created); each file appears
        whole or not at all (written beside, then renamed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in (("codes", self.codes), ("edges", self.edges)):
            partial = folder / f".{name}.npy.partial"
            with open(partial, "wb") as handle:
                np.save(handle, np.asarray(array))
            os.replace(partial, folder / f"{name}.npy")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, *, mmap: bool = True) -> HikCodes:
        """Read an index written by :meth:`save`; the codes as a read-only memmap by default.

        Raises ``FileNotFoundError`` naming the missing file, ``ValueError`` for files that do
        not fit together.
        """
        folder = Path(folder)
        for name in ("edges", "codes"):
            if not (folder / f"{name}.npy").is_file():
                raise FileNotFoundError(f"HIK codes file {folder / f'{name}.npy'} is missing")
        edges = np.load(folder / "edges.npy")
        codes = np.load(folder / "codes.npy", mmap_mode="r" if mmap else None)
        if edges.ndim != 2 or codes.ndim != 2 or edges.shape[0] != codes.shape[0]:
            raise ValueError(
                f"HIK codes in {folder} do not fit: edges {edges.shape}, codes {codes.shape}"
            )
        if codes.dtype != np.uint8 or edges.dtype != np.float64:
            raise ValueError(f"HIK codes in {folder} have dtypes {codes.dtype}, {edges.dtype}")
        return cls(edges=edges, codes=codes)

    # ------------------------------------------------------------------ checks

    def check_matches(self, features: np.ndarray) -> None:
        """Raise ``ValueError`` unless these codes were built from ``features``.

        Checks the shape and re-encodes a few spread-out rows; cheap, done before every use.
        """
        if tuple(features.shape) != (self.n_rows, self.n_dims):
            raise ValueError(
                f"HIK codes are for features of shape ({self.n_rows}, {self.n_dims}),"
                f" got {tuple(features.shape)}"
            )
        rows = np.unique(np.linspace(0, self.n_rows - 1, _SPOT_CHECKS).astype(np.int64))
        block = np.ascontiguousarray(np.asarray(features[rows]))
        outside = (block < self.edges[:, 0]) | (block > self.edges[:, -1])
        fresh = np.empty((self.n_dims, rows.size), dtype=np.uint8)
        _kernels().encode_codes(block, 0, rows.size, self.edges, fresh)
        if outside.any() or not np.array_equal(fresh, np.asarray(self.codes[:, rows])):
            raise ValueError(
                "HIK codes do not match these features (built from another file, or the"
                " features changed since); rebuild them"
            )


@dataclass(frozen=True)
class TopK:
    """The exact ``k`` best rows of a decision function.

    Attributes
    ----------
    rows : ndarray of shape (k',), int64
        Best first; equal values by lower row. ``k' = min(k, eligible rows)``.
    values : ndarray of shape (k',), float64
        Their decision values, from the exact kernel.
    scored : int
        Rows scored exactly (the candidates the bounds could not rule out).
    """

    rows: np.ndarray
    values: np.ndarray
    scored: int


def _packed_table(model, edges: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """(table (D, B) int64, unit of the midpoints, unit of the radii, extra radius per row).

    ``table >> 32`` holds the midpoints and ``table & 0xFFFFFFFF`` the radii in their units.
    """
    kernels = _kernels()
    knots, prefix, suffix = model.knots_, model.prefix_, model.suffix_
    n_dims, n_edges = edges.shape
    low = np.empty((n_dims, n_edges - 1))
    high = np.empty((n_dims, n_edges - 1))
    kernels.bucket_ranges(knots, prefix, suffix, edges, low, high)
    # float64 error of h_d = P + x Q (sums of at most S + 1 products, each term at most
    # sum|a| * max|value|), of the midpoint and the half-width: a few ulps of that scale.
    coef_sum = float(np.abs(model.dual_coef_).sum())
    largest = max(float(np.abs(edges).max()), float(np.abs(knots).max(initial=0.0)))
    slack = (knots.shape[1] + 8) * 2.0**-52 * coef_sum * largest
    table = np.empty(low.shape, dtype=np.int64)
    unit_mid, unit_radius = kernels.pack_bounds(low, high, slack, table)
    # The exact kernel's own error (see retrieval._hik_kernel): (D + S) 2^-53 sum_i |a_i| K,
    # with K(x, s_i) <= sum_d s_id; doubled.
    support_mass = float(np.abs(model.support_vectors_).sum(axis=1).max(initial=0.0))
    extra = (n_dims + knots.shape[1]) * 2.0**-52 * coef_sum * support_mass
    return table, unit_mid, unit_radius, extra


def decision_bounds(model, codes: HikCodes) -> tuple[np.ndarray, np.ndarray]:
    """``(A, R)`` for every row of the archive: ``|f(x_i) - A_i| <= R_i``.

    ``f`` is the fitted model's decision function as its exact kernel computes it. Only the
    codes are read, never the features.

    Parameters
    ----------
    model : retrieval.hik_svm.HikSvmReranker
        Fitted, on features with ``codes.n_dims`` dimensions.
    codes : HikCodes

    Returns
    -------
    centre, radius : ndarray of shape (N,), float64
    """
    kernels = _kernels()
    if codes.n_dims != model.n_features_in_:
        raise ValueError(
            f"codes have {codes.n_dims} dimensions; the model was fitted on {model.n_features_in_}"
        )
    table, unit_mid, unit_radius, extra = _packed_table(model, codes.edges)
    sums = np.empty(codes.n_rows, dtype=np.int64)
    data = codes.codes

    def scan(start: int, stop: int) -> None:
        kernels.table_sums(data, start, stop, table, sums)

    run_in_row_blocks(codes.n_rows, 4096, scan)
    centre = (sums >> 32).astype(np.float64) * unit_mid + model.intercept_
    radius = (sums & 0xFFFFFFFF).astype(np.float64) * unit_radius + extra
    # The few float64 operations above: a relative ulp or two of the magnitudes involved.
    radius += 2.0**-50 * (np.abs(centre) + abs(model.intercept_) + radius)
    return centre, radius


def bounded_top_k(
    model,
    features: ArrayLike,
    codes: HikCodes,
    k: int,
    *,
    exclude: ArrayLike | None = None,
) -> TopK:
    """The ``k`` rows of ``features`` with the largest decision values of a fitted HIK SVM.

    Parameters
    ----------
    model : retrieval.hik_svm.HikSvmReranker
        Fitted (its knots, prefix and suffix tables, dual coefficients, intercept are used).
    features : ndarray or np.memmap of shape (N, D)
        The archive ``codes`` was built from.
    codes : HikCodes
    k : int
        How many rows, >= 1.
    exclude : array-like of int, optional
        Rows never returned (judged images, the query).

    Returns
    -------
    TopK
        The same rows and values as ranking every row by ``model.decision_function``.

    Raises
    ------
    ValueError
        ``k < 1``, rows out of range, codes not built from ``features`` (spot-checked).
    """
    features = _check_features(features)
    k = check_k(k)
    if features.shape[1] != model.n_features_in_:
        raise ValueError(
            f"features have {features.shape[1]} dimensions; the model was fitted on"
            f" {model.n_features_in_}"
        )
    codes.check_matches(features)
    n_rows = features.shape[0]
    excluded = check_rows("exclude", [] if exclude is None else exclude, n_rows)
    eligible = np.ones(n_rows, dtype=bool)
    eligible[excluded] = False
    n_eligible = int(eligible.sum())
    if n_eligible <= k:
        candidates = np.flatnonzero(eligible)
    else:
        centre, radius = decision_bounds(model, codes)
        lower = np.where(eligible, centre - radius, -np.inf)
        tau = np.partition(lower, n_rows - k)[n_rows - k]
        candidates = np.flatnonzero(eligible & (centre + radius >= tau))
    values = model.decision_function(np.asarray(features[candidates]))
    order = np.lexsort((candidates, -values))[:k]
    return TopK(rows=candidates[order], values=values[order], scored=int(candidates.size))
