"""Histogram-intersection-kernel SVM for IQR re-ranking, scored exactly on all cores.

Seed 000 re-ranks the archive with an SVM trained on the worker's feedback, using the
histogram intersection kernel (HIK, Barla et al. 2003) ``K(a, b) = sum_d min(a_d, b_d)``, as
Kitware SMQTK's ``LibSvmHikRelevancyIndex`` does (libsvm, ``-c 2``, positive-class weight
``max(1, n_neg / n_pos)``). Training is small (tens of feedback images): the Gram matrix is
computed exactly and handed to scikit-learn's ``SVC(kernel="precomputed")``.

Scoring is the expensive part (every archive image, 2,048 dimensions). The decision function

    f(x) = sum_i a_i K(x, s_i) + b,      a_i = alpha_i y_i   (scikit-learn's ``dual_coef_``)

is additive over dimensions, ``f(x) = sum_d h_d(x_d) + b`` with
``h_d(x) = sum_i a_i min(x, s_id)``, and each ``h_d`` is piecewise linear with breakpoints at the
support vectors' values in dimension ``d`` (Maji, Berg, Malik, CVPR 2008, "Classification using
intersection kernel support vector machines is efficient", section 3). With the support values of
dimension ``d`` sorted, ``s_(1) <= ... <= s_(S)``, and ``r = #{j : s_(j) <= x}``:

    h_d(x) = sum_{j <= r} a_(j) s_(j)  +  x * sum_{j > r} a_(j)  =  P[d, r] + x Q[d, r]

so ``fit`` stores the sorted knots and the prefix sums ``P`` and suffix sums ``Q`` (float64). The
formula holds for any real ``x`` (below every knot ``r = 0`` and ``h_d = x sum_i a_i``), so it is
exact, not the paper's approximate uniform-bin variant.

Three backends compute the same values (``device``); all are exact in the sense above, compare
or take minima exactly and accumulate in float64:

* numba (the default without CUDA when numba is installed; :mod:`retrieval._hik_kernel`): one
  fused, compiled pass per row evaluating ``sum_i a_i sum_d min(x_d, s_id)`` directly, the row
  widened to float64 once, the minima and sums vectorised. It reads each feature once and keeps
  nothing but the row in cache. On a CPU this beats the tables: finding ``r`` costs ``S``
  vectorised comparisons per value anyway (a binary search needs gathers), and the two float64
  table gathers per value then cost more than the ``S`` minimum-and-add operations they replace.
* numpy (the fallback without numba, or ``device="numpy"``): Maji's tables, the bucket index
  counted as ``r = sum_j [x >= s_(j)]`` in uint8 arithmetic over the sorted knots, then two
  float64 gathers and a multiply-add, in several passes over ``chunk_rows``-row temporaries.
* torch (``device="cuda"``, or ``"cpu"`` on request): Maji's tables with ``torch.searchsorted``
  (the ``O(D log S)`` algorithm as written, where gathers are cheap), in float64.

Row blocks run on all cores (numpy and numba release the GIL); every row's value is computed
alone, so it does not depend on blocking, thread count or load, and concurrent calls from
several threads are safe (no shared mutable state after ``fit``).

Measured with ``benchmarks/retrieval.py`` (123,000 x 2,048 float32 memmap, 21 training images,
all 21 support vectors, 2 cores): the numba kernel takes about a fifth of the numpy backend's
CPU time and a tenth of scikit-learn's precomputed-Gram baseline, with the same top-50. Scoring
every row stays arithmetic-bound: ``2 S D`` = 86,000 float64 operations per row, 10.6 GFLOP for
the archive, a floor of about 330 ms with 256-bit vectors on 2 cores at 2 GHz. A refine needs
only the first results, so :meth:`HikSvmReranker.top_k` with the archive's bucket codes
(:mod:`retrieval.hik_codes`) bounds every row with one byte look-up per value and scores only
the few hundred rows the bounds cannot rule out: the same rows and values, a tenth of the time.

Precision: the minima and comparisons are exact and the sums float64; all backends agree with
scikit-learn to ~1e-12 of the value range. (A float32 kernel sum does not suffice: on
histograms the decision values span ~1 % of ``sum_i |a_i| K(x, s_i)``, so float32 rounding of
the kernel values or of ``a_i`` reaches 1e-6 of the range; measured 3e-7 to 4e-6.)

No Django here (STYLE habit 9).
"""

from __future__ import annotations

import functools
import numbers

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted

from .search import check_k, check_rows, run_in_row_blocks

__all__ = ["HikSvmReranker", "hik_gram"]

# numpy backend: 64 rows x 2,048 dims keeps the chunk, the uint8 bucket indices and the two
# float64 gathers (~3 MB) near the core; torch backend: bigger chunks amortise launches.
_DEFAULT_CHUNK_ROWS = {"numpy": 64, "torch": 2048, "numba": 4096}


def hik_gram(a: ArrayLike, b: ArrayLike, *, chunk_rows: int = 256) -> np.ndarray:
    """Histogram intersection kernel between two sets of rows, in float64.

    Parameters
    ----------
    a : array-like of shape (n_a, n_dims)
    b : array-like of shape (n_b, n_dims)
        Feature rows (histograms: non-negative, typically L1-normalised). ``a`` may be a memmap;
        it is read ``chunk_rows`` rows at a time.
    chunk_rows : int
        Rows of ``a`` per step; the temporary is ``chunk_rows x n_b x n_dims`` values.

    Returns
    -------
    ndarray of shape (n_a, n_b), float64
        ``K[i, j] = sum_d min(a_id, b_jd)``; the minima are exact, the sums float64.
    """
    b = np.asarray(b)
    if np.ndim(a) != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two 2-D arrays with equal columns, got {np.shape(a)}, {b.shape}")
    out = np.empty((a.shape[0], b.shape[0]), dtype=np.float64)
    step = max(1, min(chunk_rows, (1 << 22) // max(1, b.size)))
    for start in range(0, a.shape[0], step):
        chunk = np.asarray(a[start : start + step])
        out[start : start + step] = np.minimum(chunk[:, None, :], b[None, :, :]).sum(
            axis=2, dtype=np.float64
        )
    return out


def _check_matrix(name: str, X: ArrayLike, n_features: int | None = None) -> np.ndarray:
    if not hasattr(X, "shape") or not hasattr(X, "dtype"):
        X = np.asarray(X)
    if len(X.shape) != 2:
        raise ValueError(f"{name} must be 2-D (n_images, n_dims), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} dimensions; the model was fitted on {n_features}"
        )
    return X


@functools.cache
def _compiled_kernel():
    """The compiled scoring kernel, or None when numba is missing or cannot set up its cache.

    Looked up once per process.
    """
    try:
        from . import _hik_kernel
    except (ImportError, RuntimeError):  # RuntimeError: numba found no cache directory
        return None
    return _hik_kernel.score_rows


def _resolve_backend(device) -> tuple[str, object]:
    """(backend, torch device): "torch" with a device, "numba" or "numpy" with None.

    None picks CUDA when available, else the compiled kernel when numba is installed, else
    numpy; "numpy" and "numba" ask for those; anything else is a torch device.
    """
    if isinstance(device, str) and device in ("numpy", "numba"):
        if device == "numba" and _compiled_kernel() is None:
            raise ImportError('device="numba" needs the numba package: pip install numba')
        return device, None
    import torch

    if device is None:
        if torch.cuda.is_available():
            return "torch", torch.device("cuda")
        return ("numba" if _compiled_kernel() is not None else "numpy"), None
    return "torch", torch.device(device)


class HikSvmReranker(BaseEstimator):
    """SVM with the histogram intersection kernel, scored by Maji et al.'s lookup tables.

    Follows the scikit-learn estimator contract: the constructor only stores its arguments,
    :meth:`fit` returns ``self``, learned state ends in ``_``, :meth:`get_params` /
    :meth:`get_config` round-trip through the constructor.

    Parameters
    ----------
    C : float, default 2.0
        SVM regularisation (SMQTK's libsvm ``-c 2``), > 0.
    positive_weight : "auto" or float, default "auto"
        Weight of the relevant class's ``C``. "auto" is SMQTK's ``max(1, n_neg / n_pos)``
        (``LibSvmHikRelevancyIndex._gen_w1_weight``); a number is used as given (> 0).
    chunk_rows : int or None, default None
        Rows scored per step (bounds memory); None: 64 on numpy, 2,048 on torch, 4,096 on
        numba (which reads C-contiguous float32/float64 arrays and memmaps in place, without
        chunks).
    device : None, "numba", "numpy", "cpu" or "cuda", default None
        Scoring backend; None: torch on CUDA when available, else the compiled numba kernel
        when numba is installed, else numpy; all on all cores. "numba" without numba raises
        ``ImportError`` at scoring time.

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        ``[0, 1]``: not relevant, relevant.
    n_features_in_ : int
        Number of dimensions ``D``.
    positive_weight_ : float
        The relevant-class weight used.
    support_ : ndarray of shape (S,), int64
        Indices of the support vectors in the training set.
    support_vectors_ : ndarray of shape (S, D)
        The support vectors (training dtype).
    dual_coef_ : ndarray of shape (S,), float64
        ``a_i = alpha_i y_i`` with ``y = +1`` for relevant (scikit-learn's sign).
    intercept_ : float
        ``b``.
    knots_ : ndarray of shape (D, S), float64
        Support values sorted per dimension (Maji et al., section 3).
    prefix_ : ndarray of shape (D, S + 1), float64
        ``P[d, r] = sum_{j < r} a_(j) s_(j)`` over the sorted support values.
    suffix_ : ndarray of shape (D, S + 1), float64
        ``Q[d, r] = sum_{j >= r} a_(j)``.
    """

    def __init__(
        self,
        C: float = 2.0,
        positive_weight: str | float = "auto",
        *,
        chunk_rows: int | None = None,
        device: str | None = None,
    ) -> None:
        self.C = C
        self.positive_weight = positive_weight
        self.chunk_rows = chunk_rows
        self.device = device

    # ------------------------------------------------------------------ configuration

    def get_config(self) -> dict:
        """Constructor arguments; ``type(m)(**m.get_config()).get_config() == m.get_config()``."""
        return dict(self.get_params(deep=False))

    def _check_params(self) -> None:
        if isinstance(self.C, bool) or not isinstance(self.C, numbers.Real) or not self.C > 0:
            raise ValueError(f"C must be a positive number, got {self.C!r}")
        weight = self.positive_weight
        if weight != "auto" and (
            isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not weight > 0
        ):
            raise ValueError(f'positive_weight must be "auto" or a positive number, got {weight!r}')
        if self.chunk_rows is not None and (
            isinstance(self.chunk_rows, bool)
            or not isinstance(self.chunk_rows, numbers.Integral)
            or self.chunk_rows < 1
        ):
            raise ValueError(f"chunk_rows must be None or an integer >= 1, got {self.chunk_rows!r}")

    # ------------------------------------------------------------------ training

    def fit(self, X: ArrayLike, y: ArrayLike) -> HikSvmReranker:
        """Train on feedback.

        Parameters
        ----------
        X : array-like of shape (n_train, D)
            Features of the judged images (and the query), non-negative histograms.
        y : array-like of shape (n_train,)
            1 for relevant (the query counts as relevant), 0 for not relevant; booleans accepted.
            Both classes must be present.

        Returns
        -------
        self
        """
        self._check_params()
        X = np.asarray(_check_matrix("X", X))
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"X must have at least one row and one column, got {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("X must be finite (no NaN or infinity)")
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
        if y.dtype == np.bool_:
            y = y.astype(np.int64)
        if not np.isin(y, (0, 1)).all():
            raise ValueError("y must hold only 1 (relevant) and 0 (not relevant)")
        y = y.astype(np.int64)
        n_pos, n_neg = int(y.sum()), int((1 - y).sum())
        if n_pos == 0 or n_neg == 0:
            raise ValueError(
                f"need relevant and not-relevant examples, got {n_pos} relevant, {n_neg} not"
            )
        # SMQTK LibSvmHikRelevancyIndex._gen_w1_weight: w1 = max(1, n_neg / n_pos).
        weight = max(1.0, n_neg / n_pos) if self.positive_weight == "auto" else self.positive_weight
        svc = SVC(kernel="precomputed", C=float(self.C), class_weight={0: 1.0, 1: float(weight)})
        svc.fit(hik_gram(X, X), y)

        self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        self.positive_weight_ = float(weight)
        self.support_ = svc.support_.astype(np.int64)
        self.support_vectors_ = X[self.support_].copy()
        # scikit-learn's binary SVC: decision = K[:, support_] @ dual_coef_[0] + intercept_[0],
        # positive for classes_[1] (relevant).
        self.dual_coef_ = svc.dual_coef_[0].astype(np.float64)
        self.intercept_ = float(svc.intercept_[0])
        self._build_tables()
        return self

    def _build_tables(self) -> None:
        # Maji, Berg, Malik 2008, section 3: per dimension, sort the support values; the prefix
        # sums of a_i s_id and the suffix sums of a_i give h_d on each linear piece.
        support = self.support_vectors_.astype(np.float64)  # (S, D), exact for float32 input
        order = np.argsort(support, axis=0, kind="stable")
        knots = np.take_along_axis(support, order, axis=0).T  # (D, S)
        coef = self.dual_coef_[order].T  # (D, S), a_(j) in the sorted order
        n_dims, n_support = knots.shape
        prefix = np.zeros((n_dims, n_support + 1))
        np.cumsum(coef * knots, axis=1, out=prefix[:, 1:])
        suffix = np.zeros((n_dims, n_support + 1))
        suffix[:, :-1] = np.cumsum(coef[:, ::-1], axis=1)[:, ::-1]
        self.knots_ = np.ascontiguousarray(knots)
        self.prefix_ = prefix
        self.suffix_ = suffix

    # ------------------------------------------------------------------ scoring

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Signed distance to the separating surface, ``sum_i a_i K(x, s_i) + b``.

        Parameters
        ----------
        X : ndarray or np.memmap of shape (n_images, D)
            Features to score; read ``chunk_rows`` rows at a time (a 1 GB memmap is fine).

        Returns
        -------
        ndarray of shape (n_images,), float64
            Higher = more relevant; positive = on the relevant side. Equal to scikit-learn's
            ``SVC(kernel="precomputed").decision_function`` on the HIK Gram matrix between
            ``X`` and the training rows (to ~1e-12 of the value range; tests hold it to 1e-6).

        Raises
        ------
        ValueError
            ``X`` not 2-D, the wrong number of dimensions, or rows holding NaN or infinity.
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        """
        check_is_fitted(self, "knots_")
        self._check_params()
        X = _check_matrix("X", X, self.n_features_in_)
        backend, device = _resolve_backend(self.device)
        out = np.empty(X.shape[0], dtype=np.float64)
        step = self.chunk_rows or _DEFAULT_CHUNK_ROWS[backend]
        if backend == "numba":
            self._score_compiled(X, out, step)
        elif backend == "numpy":
            self._score_numpy(X, out, step)
        else:
            self._score_torch(X, out, step, device)
        # Tables: NaN features give NaN (NaN * Q), +-inf give inf * 0 = NaN or +-inf; the numba
        # kernel adds x * 0 over the row (NaN for NaN or +-inf). Never a number either way.
        bad = ~np.isfinite(out)
        if bad.any():
            shown = ", ".join(str(int(row)) for row in np.flatnonzero(bad)[:10])
            raise ValueError(f"X holds non-finite values (NaN or infinity) in rows {shown}")
        return out

    def score(self, X: ArrayLike) -> np.ndarray:
        """Relevance scores for re-ranking: the same values as :meth:`decision_function`.

        Unlike scikit-learn classifiers' ``score(X, y)`` (an accuracy), this is the re-ranker's
        score of each image (STYLE habit 13: ``HikSvmReranker().fit(X, y).score(candidates)``);
        sort it in decreasing order to rank.
        """
        return self.decision_function(X)

    def top_k(self, X: ArrayLike, k: int, *, codes=None, exclude: ArrayLike | None = None):
        """The ``k`` rows of ``X`` with the largest decision values, exactly.

        Parameters
        ----------
        X : ndarray or np.memmap of shape (n_images, D)
        k : int
            How many rows, >= 1.
        codes : retrieval.hik_codes.HikCodes, optional
            The archive's codes: only rows that proven bounds cannot rule out are scored
            exactly (:func:`retrieval.hik_codes.bounded_top_k`). Without them every row is.
        exclude : array-like of int, optional
            Rows never returned.

        Returns
        -------
        retrieval.hik_codes.TopK
            ``rows`` best first (equal values by lower row), their exact ``values``, and how
            many rows were ``scored`` exactly. Both ways give the same rows and values.
        """
        from .hik_codes import TopK, bounded_top_k

        check_is_fitted(self, "knots_")
        if codes is not None:
            return bounded_top_k(self, X, codes, k, exclude=exclude)
        k = check_k(k)
        values = self.decision_function(X)
        eligible = np.ones(values.size, dtype=bool)
        eligible[check_rows("exclude", [] if exclude is None else exclude, values.size)] = False
        rows = np.flatnonzero(eligible)
        order = np.lexsort((rows, -values[rows]))[:k]
        return TopK(rows=rows[order], values=values[rows[order]], scored=int(values.size))

    def _score_torch(self, X, out: np.ndarray, step: int, device) -> None:
        import torch

        knots = torch.from_numpy(self.knots_).to(device)  # (D, S)
        prefix = torch.from_numpy(self.prefix_).to(device)  # (D, S + 1)
        suffix = torch.from_numpy(self.suffix_).to(device)
        # Features resident on this device (retrieval.resident) are read in place: no copy.
        resident = hasattr(X, "device_rows") and X.on(device)
        with torch.no_grad():
            for start in range(0, X.shape[0], step):
                if resident:
                    chunk = X.device_rows(start, min(start + step, X.shape[0]))
                else:
                    # A copy: memmap slices are read-only, and the chunk goes to the device.
                    chunk = torch.from_numpy(np.array(X[start : start + step])).to(device)
                # Dimension-major and float64: comparisons with the (exact) float64 knots are
                # exact, products correctly rounded.
                x = chunk.T.to(torch.float64).contiguous()  # (D, m)
                # r = #{j : s_(j) <= x}; right=True sends x equal to a knot to the piece above,
                # where both pieces agree (min(x, s) = x = s).
                r = torch.searchsorted(knots, x, right=True)
                h = torch.gather(prefix, 1, r).addcmul_(x, torch.gather(suffix, 1, r))
                values = h.sum(dim=0) + self.intercept_
                out[start : start + chunk.shape[0]] = values.cpu().numpy()

    def _score_compiled(self, X, out: np.ndarray, step: int) -> None:
        kernel = _compiled_kernel()
        support = np.ascontiguousarray(self.support_vectors_, dtype=np.float64)
        coef = np.ascontiguousarray(self.dual_coef_, dtype=np.float64)
        intercept = float(self.intercept_)
        native = X.dtype in (np.float32, np.float64)
        if isinstance(X, np.ndarray) and native and X.flags.c_contiguous:
            # One pass over the rows in place, no copy (a memmap's pages are read directly).
            data = np.asarray(X)

            def score_block(block_start: int, block_stop: int) -> None:
                kernel(data, block_start, block_stop, support, coef, intercept, out)

        else:
            # Row views, other dtypes, strided arrays: copied ``step`` rows at a time.
            dtype = X.dtype if native else np.dtype(np.float64)

            def score_block(block_start: int, block_stop: int) -> None:
                for start in range(block_start, block_stop, step):
                    stop = min(start + step, block_stop)
                    chunk = np.ascontiguousarray(X[start:stop], dtype=dtype)
                    kernel(chunk, 0, stop - start, support, coef, intercept, out[start:stop])

        # The kernel releases the GIL: one block of rows per core.
        run_in_row_blocks(X.shape[0], min(step, 256), score_block)

    def _score_numpy(self, X, out: np.ndarray, step: int) -> None:
        n_dims, n_support = self.knots_.shape
        # Compare in float32 when both the features and the knots are float32 (the knots are
        # copies of training values, so usually they are): half the bytes, same answers.
        knots = self.knots_
        dtype = np.float64
        if X.dtype == np.float32 and np.array_equal(knots.astype(np.float32), knots):
            dtype = np.float32
        columns = [np.ascontiguousarray(knots[:, j], dtype=dtype) for j in range(n_support)]
        counter = np.uint8 if n_support < 255 else np.uint16
        prefix, suffix = self.prefix_.ravel(), self.suffix_.ravel()
        offsets = np.arange(n_dims, dtype=np.intp) * (n_support + 1)

        def score_block(block_start: int, block_stop: int) -> None:
            hit = np.empty((step, n_dims), dtype=np.bool_)
            bucket = np.empty((step, n_dims), dtype=counter)
            index = np.empty((step, n_dims), dtype=np.intp)
            low = np.empty((step, n_dims))
            slope = np.empty((step, n_dims))
            for start in range(block_start, block_stop, step):
                chunk = np.asarray(X[start : min(start + step, block_stop)], dtype=dtype)
                m = chunk.shape[0]
                hit_m, r, idx, h, q = hit[:m], bucket[:m], index[:m], low[:m], slope[:m]
                # Maji et al.'s bucket index r = #{j : s_(j) <= x}, counted over the sorted knots.
                if n_support:
                    np.greater_equal(chunk, columns[0], out=hit_m)
                    r[...] = hit_m
                for column in columns[1:]:
                    np.greater_equal(chunk, column, out=hit_m)
                    np.add(r, hit_m.view(np.uint8), out=r, casting="unsafe")
                np.add(r, offsets, out=idx)
                # h_d(x) = P[d, r] + x Q[d, r]; indices are in range, "wrap" skips the checks.
                np.take(prefix, idx, out=h, mode="wrap")
                np.take(suffix, idx, out=q, mode="wrap")
                with np.errstate(invalid="ignore"):  # inf * 0 for infinite x: reported below
                    np.multiply(q, chunk, out=q)
                np.add(h, q, out=h)
                out[start : start + m] = np.add.reduce(h, axis=1) + self.intercept_

        # numpy releases the GIL inside ufuncs and take: one block of rows per core.
        run_in_row_blocks(X.shape[0], step, score_block)
