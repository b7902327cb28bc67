"""Top-N retrieval accuracy, seed 000 Eq. 5.

    accuracy = (1 / N) * sum_{i=1}^{N} 1_{A_i}(l),   1_{A_i}(l) = 1 if l in A_i else 0

where ``A_i`` is the set of annotations of the ``i``-th retrieved image, ``l`` the query target
class and ``N`` the cut-off (the study uses ``N = 50``). No Django here (STYLE habit 9): the
caller turns "annotations contain the target class" into ``relevant``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["ACCURACY_TOP_N", "retrieval_accuracy"]

#: Eq. 5's cut-off in seed 000's study: the top 50 of each round's ranking.
ACCURACY_TOP_N = 50


def retrieval_accuracy(
    ranking: Sequence[int] | ArrayLike,
    relevant: Collection[int] | ArrayLike,
    n: int = 50,
) -> float:
    """Fraction of the top ``n`` ranked items that hold the target class (seed 000, Eq. 5).

    Parameters
    ----------
    ranking : sequence or 1-D array of int
        Retrieved items, best first: row indices (when ``relevant`` is a boolean array) or any
        integer ids (when ``relevant`` is a collection). Only the first ``n`` are read.
    relevant : 1-D boolean array or collection of int
        Either a boolean mask over rows (``relevant[row]`` true when the image's annotations
        contain the target class) or the set of relevant items.
    n : int, default 50
        The cut-off ``N`` of Eq. 5, >= 1.

    Returns
    -------
    float
        In [0, 1]. The sum is always divided by ``n``: when fewer than ``n`` items are ranked
        the missing places count as misses, because Eq. 5's ``N`` is the fixed cut-off of the
        study, not the length of a particular list (a list of 10 hits scores 0.2 at ``n = 50``).

    Raises
    ------
    ValueError
        ``n < 1``, ``ranking`` not 1-D integers, rows outside a boolean ``relevant`` mask, or a
        ranking that lists an item twice within its top ``n`` (Eq. 5 counts distinct images).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    top = np.asarray(ranking)
    if top.size == 0:
        return 0.0
    if top.ndim != 1 or top.dtype == np.bool_ or not np.issubdtype(top.dtype, np.integer):
        raise ValueError(f"ranking must be 1-D integers, got shape {top.shape}, {top.dtype}")
    top = top[:n]
    if np.unique(top).size != top.size:
        raise ValueError("ranking lists an item more than once in its top n")
    if isinstance(relevant, np.ndarray) and relevant.dtype == np.bool_:
        if relevant.ndim != 1:
            raise ValueError(f"a relevance mask must be 1-D, got shape {relevant.shape}")
        outside = top[(top < 0) | (top >= relevant.size)]
        if outside.size:
            raise ValueError(
                f"ranking holds rows outside the relevance mask of {relevant.size} rows: "
                + ", ".join(str(int(row)) for row in outside[:10])
            )
        hits = int(relevant[top].sum())
    else:
        relevant_set = {int(item) for item in np.asarray(list(relevant)).ravel()}
        hits = sum(int(item) in relevant_set for item in top)
    # seed 000, Eq. 5: divide by the fixed cut-off N.
    return hits / n
