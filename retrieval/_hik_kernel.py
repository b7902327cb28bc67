"""Compiled CPU kernel for the HIK SVM's decision function, via numba.

Evaluates ``f(x) = sum_i a_i K(x, s_i) + b`` with ``K(x, s) = sum_d min(x_d, s_d)`` directly,
in one pass over each feature row: the row is widened to float64 once (exact for float32), then
for every support vector the minima are taken (exact) and summed in float64, and the kernel
values are combined with the dual coefficients ``a_i``. This is the SVM's own formula, not an
approximation; it costs ``O(S D)`` per row like the numpy backend's comparison counting, but it
needs no table look-ups. Counting ``r`` still takes ``S`` vectorised comparisons per value, and
the two float64 gathers from the ``(D, S + 1)`` tables then cost more than the ``S``
minimum-and-add operations they replace: an AVX-512 version of the counting and gathering ran
1.5 to 2 times slower than an AVX-512 version of this direct sum on the development machine.

Precision: the minima are exact; each kernel value is a float64 sum of ``D`` non-negative terms
(relative error below ``D * 2**-53``, about 2.3e-13 for ``D = 2,048``) and the ``S`` products are
summed in float64, so ``|f - f_exact| <= (D + S) * 2**-53 * sum_i |a_i| K(x, s_i)``: about 1e-12
of the decision values' magnitude, far inside the 1e-6 agreement with scikit-learn that the
tests check.

The kernel is compiled once per input type and cached on disk (numba's ``cache=True``: beside
this file, or in the user's cache directory when that is read-only). It releases the GIL; the
caller splits the rows into blocks and runs one block per thread. Concurrent calls from several
threads are safe (each call owns its buffers), and every row is summed alone, in an order fixed
at compile time, so the values do not depend on the blocking, the thread count or the load.

Importing this module raises ``ImportError`` when numba is not installed (``RuntimeError`` when
numba finds no writable cache directory); the caller then falls back to the numpy backend.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["NUMBA_VERSION", "score_rows"]

NUMBA_VERSION: str = numba.__version__


# fastmath: only "reassoc" (the float64 sums over dimensions may be reordered, which lets them
# vectorise) and "contract" (a * K + t may become one fused multiply-add). Never "nnan"/"ninf":
# NaN and infinite features must still come out non-finite so that the caller can name them.
@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def score_rows(X, start, stop, support, coef, intercept, out):  # pragma: no cover
    """Write ``f(X[i])`` into ``out[i]`` for ``start <= i < stop``.

    Parameters
    ----------
    X : ndarray of shape (n_rows, D), float32 or float64, C-contiguous
        Feature rows (a memmap's ndarray view is read in place).
    start, stop : int
        Row range to score.
    support : ndarray of shape (S, D), float64, C-contiguous
        Support vectors ``s_i``.
    coef : ndarray of shape (S,), float64
        Dual coefficients ``a_i = alpha_i y_i``.
    intercept : float
        ``b``.
    out : ndarray of shape (n_rows,), float64
        Receives the decision values; NaN for a row holding NaN or infinity.
    """
    n_support, n_dims = support.shape
    row = np.empty(n_dims, dtype=np.float64)
    for i in range(start, stop):
        x = X[i]
        # 0 for a finite row, NaN when any value is NaN or infinite (inf * 0 = NaN).
        flag = 0.0
        for d in range(n_dims):
            row[d] = x[d]
            flag += x[d] * 0.0
        total = 0.0
        for j in range(n_support):
            s = support[j]
            kernel = 0.0
            for d in range(n_dims):
                # min(x_d, s_d), written so that a NaN x_d propagates.
                kernel += s[d] if s[d] < row[d] else row[d]
            total += coef[j] * kernel
        out[i] = total + intercept + flag
