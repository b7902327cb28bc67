"""Interactive Query Refinement (IQR) over an archive of features, as in Kitware SMQTK.

Seed 000 runs its user study on SMQTK's IQR: the worker marks results "relevant" or "not
relevant", an SVM with the histogram intersection kernel is trained on the marks (the query is a
positive) and the working set is re-ranked by it. :class:`IqrSession` reproduces SMQTK's
``IqrSession`` (smqtk-iqr) driving ``LibSvmHikRelevancyIndex`` (smqtk-relevancy):

* **working set**: the union, over the positives (the query included), of each positive's
  ``neighbours_per_positive`` (500) nearest archive images by HIK distance, the positive itself
  included; it only grows, and a positive seeds it once (SMQTK ``update_working_set`` and its
  ``_wi_seeds_used``), even if later unmarked. ``working_set="all"`` ranks the whole archive.
* **model**: HIK SVM, ``C = 2`` (libsvm ``-c 2``), relevant-class weight ``max(1, n_neg /
  n_pos)`` (``_gen_w1_weight``); see :class:`retrieval.hik_svm.HikSvmReranker`.
* **no negatives yet**: for each positive, the working-set image farthest from it (HIK
  distance) serves as a negative (``autoneg_select_ratio = 1``), positives removed from that set.
* **adjudication**: marking a row relevant removes it from the not-relevant set and vice versa;
  ``unmark`` removes it from both.

Where this differs from SMQTK, and why:

* Ranking by the SVM decision value instead of libsvm's Platt probability (``-b 1``). Platt's
  sigmoid is monotone, so the order is the same, except that SMQTK's probabilities come from a
  randomised internal 5-fold cross-validation and saturate at 1.0 for distant images (ties in
  float64); the decision value is deterministic and never saturates, so a worker's ranking is
  reproducible from the stored state. It also makes SMQTK's "flip the probabilities if the
  positives score low" heuristic unnecessary: scikit-learn's sign is fixed (positive =
  relevant).
* :meth:`IqrSession.refine` returns only unjudged working-set rows (SMQTK ranks every
  working-set element and leaves filtering to the GUI): the study shows workers images they have
  not judged yet. The query's own row is never returned.
* Ties (equal decision values, equally distant auto-negatives) go to the lower row; SMQTK's
  order there depends on dictionary and ``argpartition`` order.
* Rows are validated: out-of-range rows, or a row marked both relevant and not relevant in one
  call, raise ``ValueError`` and change nothing (SMQTK silently cancels such a pair out).
* The state is a small JSON-serialisable dict of row indices (SMQTK pickles descriptor vectors):
  :meth:`to_state` / :meth:`from_state` let a worker's session survive a server restart.

No Django here (STYLE habit 9): ``retrieval/services/iqr.py`` maps image ids to rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike

from .hik_codes import HikCodes
from .hik_svm import HikSvmReranker
from .search import check_rows, distances, top_k, top_k_batch

__all__ = ["WORKING_SETS", "IqrSession"]

#: How the working set is built: SMQTK's neighbourhoods of the positives, or the whole archive.
WORKING_SETS: tuple[str, ...] = ("neighbours", "all")

_STATE_VERSION = 1


class IqrSession:
    """One worker's IQR session on one query.

    Parameters
    ----------
    features : ndarray or np.memmap of shape (n_images, n_dims)
        Archive features, non-negative, L1-normalised (ResNet50 avgpool, seed 000). Only read.
    query : int or array-like of shape (n_dims,)
        The query's row in ``features``, or its feature vector when the query image is not in
        the archive. Either way the query is a positive example.
    working_set : {"neighbours", "all"}, default "neighbours"
        "neighbours": SMQTK's union of the ``neighbours_per_positive`` nearest rows (HIK
        distance) of each positive; "all": every row.
    neighbours_per_positive : int, default 500
        SMQTK's ``pos_seed_neighbors``.
    C : float, default 2.0
        SVM regularisation (SMQTK: libsvm ``-c 2``).
    positive_weight : "auto" or float, default "auto"
        Relevant-class weight; "auto" is SMQTK's ``max(1, n_neg / n_pos)``.
    device : None, "numpy", "cpu" or "cuda"
        Backend for the nearest-neighbour scans and the SVM scoring (see :mod:`retrieval.search`
        and :class:`retrieval.hik_svm.HikSvmReranker`). None: CUDA when available; else numpy
        for the scans and, for the SVM, the compiled numba kernel (numpy without numba).
    codes : retrieval.hik_codes.HikCodes, optional
        The archive's bucket codes. With them, ``refine(limit=k)`` over the whole archive scores
        only the rows that proven bounds cannot rule out (:mod:`retrieval.hik_codes`); the
        answer is the same.

    Raises
    ------
    ValueError
        Bad shapes, a query row out of range, a non-finite query vector, an unknown working set,
        ``neighbours_per_positive < 1``.
    """

    def __init__(
        self,
        features: ArrayLike,
        query: int | ArrayLike,
        *,
        working_set: str = "neighbours",
        neighbours_per_positive: int = 500,
        C: float = 2.0,
        positive_weight: str | float = "auto",
        device: str | None = None,
        codes: HikCodes | None = None,
    ) -> None:
        if not hasattr(features, "shape") or len(features.shape) != 2:
            raise ValueError(f"features must be 2-D (n_images, n_dims), got {np.shape(features)}")
        self.features = features
        n_rows, n_dims = features.shape
        if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
            if not 0 <= int(query) < n_rows:
                raise ValueError(f"query row {int(query)} is outside [0, {n_rows})")
            self.query_row: int | None = int(query)
            self.query_vector = np.array(features[self.query_row])
        else:
            vector = np.asarray(query)
            if vector.shape != (n_dims,) or not np.issubdtype(vector.dtype, np.number):
                raise ValueError(
                    f"query must be a row index or a vector of shape ({n_dims},), got {vector!r}"
                    if vector.ndim == 0
                    else f"query vector must have shape ({n_dims},), got {vector.shape}"
                )
            if not np.isfinite(vector).all():
                raise ValueError("query vector must be finite")
            self.query_row = None
            self.query_vector = vector.astype(features.dtype, copy=True)
        if working_set not in WORKING_SETS:
            raise ValueError(
                f"unknown working_set {working_set!r}; expected one of {', '.join(WORKING_SETS)}"
            )
        if (
            isinstance(neighbours_per_positive, bool)
            or not isinstance(neighbours_per_positive, (int, np.integer))
            or neighbours_per_positive < 1
        ):
            raise ValueError(
                f"neighbours_per_positive must be an integer >= 1, got {neighbours_per_positive!r}"
            )
        self.working_set = working_set
        self.neighbours_per_positive = int(neighbours_per_positive)
        self.C = C
        self.positive_weight = positive_weight
        self.device = device
        self.codes = codes
        # Validated now, so a bad C fails at construction rather than at the first refine.
        HikSvmReranker(C=C, positive_weight=positive_weight)._check_params()
        self.positives: set[int] = set()
        self.negatives: set[int] = set()
        # SMQTK's working set and its book-keeping of positives already used as seeds; the
        # query (in or out of the archive) is seed None.
        self._working_rows = np.empty(0, dtype=np.int64)
        self._seeded: set[int | None] = set()

    # ------------------------------------------------------------------ feedback

    def adjudicate(
        self,
        *,
        positives: Iterable[int] = (),
        negatives: Iterable[int] = (),
        unmark: Iterable[int] = (),
    ) -> None:
        """Record the worker's marks (row indices into ``features``).

        Parameters
        ----------
        positives, negatives : iterable of int
            Rows now judged relevant / not relevant; a row changes sides if it was judged before.
        unmark : iterable of int
            Rows whose judgement is withdrawn.

        Raises
        ------
        ValueError
            Rows out of range, a row in more than one of the three lists, or the query's own
            row (always a positive). Nothing changes when it raises.
        """
        n_rows = self.features.shape[0]
        marked = {
            name: set(check_rows(name, rows, n_rows).tolist())
            for name, rows in (
                ("positives", positives),
                ("negatives", negatives),
                ("unmark", unmark),
            )
        }
        for first, second in (
            ("positives", "negatives"),
            ("positives", "unmark"),
            ("negatives", "unmark"),
        ):
            both = sorted(marked[first] & marked[second])
            if both:
                raise ValueError(f"rows both in {first} and in {second}: {both}")
        if self.query_row is not None:
            for name, rows in marked.items():
                if self.query_row in rows:
                    raise ValueError(
                        f"{name} holds the query's row {self.query_row}, which is always a positive"
                    )
        self.positives |= marked["positives"]
        self.positives -= marked["negatives"] | marked["unmark"]
        self.negatives |= marked["negatives"]
        self.negatives -= marked["positives"] | marked["unmark"]

    # ------------------------------------------------------------------ ranking

    def initial_ranking(self, k: int) -> np.ndarray:
        """The top ``k`` rows by HIK distance to the query, the query's row excluded.

        Returns
        -------
        ndarray of shape (min(k, n_eligible),), int64
            Nearest first, ties by lower row (seed 000's initial retrieval).
        """
        exclude = [] if self.query_row is None else [self.query_row]
        rows, _ = top_k(
            self.features, self.query_vector, k, metric="hik", exclude=exclude, device=self.device
        )
        return rows

    def working_rows(self) -> np.ndarray:
        """Rows of the working set as it stands (sorted), after seeding from new positives."""
        self._update_working_set()
        if self.working_set == "all":
            return np.arange(self.features.shape[0], dtype=np.int64)
        return self._working_rows.copy()

    def _update_working_set(self) -> None:
        # SMQTK IqrSession.update_working_set: query the neighbour index only for positives
        # that have not seeded the working set yet; the set only grows.
        if self.working_set == "all":
            return
        seeds: list[int | None] = [None] if None not in self._seeded else []
        seeds += sorted(row for row in self.positives if row not in self._seeded)
        if not seeds:
            return
        vectors = np.stack(
            [
                self.query_vector if seed is None else np.asarray(self.features[seed])
                for seed in seeds
            ]
        )
        # One pass over the archive for all new seeds (top_k_batch).
        found, _ = top_k_batch(
            self.features, vectors, self.neighbours_per_positive, metric="hik", device=self.device
        )
        self._working_rows = np.union1d(self._working_rows, found.ravel())
        self._seeded.update(seeds)

    def _training_set(self, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        positive_rows = np.array(sorted(self.positives), dtype=np.int64)
        negative_rows = np.array(sorted(self.negatives), dtype=np.int64)
        positive_vectors = np.concatenate(
            [self.query_vector[None, :], np.asarray(self.features[positive_rows])]
        )
        if negative_rows.size == 0:
            # SMQTK: with no negative yet, each positive's farthest working-set element (HIK
            # distance) is a negative; positives (and the query) are removed from that set.
            far = distances(
                self.features, positive_vectors, metric="hik", rows=pool, device=self.device
            )
            # argmax returns the first maximum: among equally far rows, the lowest.
            chosen = set(pool[np.argmax(far, axis=1)].tolist())
            chosen -= self.positives | {self.query_row}
            if not chosen:
                raise RuntimeError(
                    "no negative example: nothing judged not relevant and every working-set row"
                    " farthest from a positive is itself a positive"
                )
            negative_rows = np.array(sorted(chosen), dtype=np.int64)
        X = np.concatenate([positive_vectors, np.asarray(self.features[negative_rows])])
        y = np.r_[np.ones(len(positive_vectors), np.int64), np.zeros(negative_rows.size, np.int64)]
        return X, y

    def refine(self, limit: int | None = None) -> np.ndarray:
        """Train the HIK SVM on the marks and rank the unjudged working set.

        Parameters
        ----------
        limit : int, optional
            Return only the first ``limit`` rows of the ranking (what a worker is shown). Over
            the whole archive with ``codes`` this is what makes a refine fast; the rows are the
            same as the first ``limit`` of the full ranking.

        Returns
        -------
        ndarray of shape (n_unjudged,) or (min(limit, n_unjudged),), int64
            Working-set rows that are neither judged nor the query's row, by decreasing SVM
            decision value (most relevant first), ties by lower row.

        Raises
        ------
        RuntimeError
            When no negative example can be found (see the module docstring).
        """
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1
        ):
            raise ValueError(f"limit must be None or an integer >= 1, got {limit!r}")
        pool = self.working_rows()
        X, y = self._training_set(pool)
        model = HikSvmReranker(C=self.C, positive_weight=self.positive_weight, device=self.device)
        model.fit(X, y)
        judged = self.positives | self.negatives
        if self.query_row is not None:
            judged.add(self.query_row)
        if self.working_set == "all" and limit is not None:
            return model.top_k(
                self.features, int(limit), codes=self.codes, exclude=sorted(judged)
            ).rows
        candidates = pool[~np.isin(pool, np.fromiter(judged, dtype=np.int64, count=len(judged)))]
        if self.working_set == "all":
            # The whole archive in one fused pass over the feature matrix (a memmap is read in
            # place); the few judged rows are dropped afterwards rather than copying the rest.
            scores = model.decision_function(self.features)[candidates]
        else:
            scores = model.decision_function(_RowView(self.features, candidates))
        # Decreasing score, ties by lower row: candidates are ascending, the sort is stable.
        order = np.argsort(-scores, kind="stable")
        return candidates[order] if limit is None else candidates[order[:limit]]

    # ------------------------------------------------------------------ persistence

    def to_state(self) -> dict:
        """The session as plain JSON types (ints, floats, strings, lists; no arrays).

        Holds the parameters, the marks, the query (row, or vector for an outside image), the
        working set and its seeds, and the archive's shape (checked by :meth:`from_state`).
        """
        return {
            "version": _STATE_VERSION,
            "n_rows": int(self.features.shape[0]),
            "n_dims": int(self.features.shape[1]),
            "query_row": self.query_row,
            "query_vector": None
            if self.query_row is not None
            else [float(value) for value in self.query_vector],
            "working_set": self.working_set,
            "neighbours_per_positive": self.neighbours_per_positive,
            "C": float(self.C),
            "positive_weight": self.positive_weight
            if self.positive_weight == "auto"
            else float(self.positive_weight),
            "positives": sorted(int(row) for row in self.positives),
            "negatives": sorted(int(row) for row in self.negatives),
            "working_rows": [int(row) for row in self._working_rows],
            "seeded_query": None in self._seeded,
            "seeded_rows": sorted(int(row) for row in self._seeded if row is not None),
        }

    @classmethod
    def from_state(
        cls,
        state: dict,
        features: ArrayLike,
        *,
        device: str | None = None,
        codes: HikCodes | None = None,
    ) -> IqrSession:
        """Rebuild a session from :meth:`to_state` output and the same archive features.

        ``device`` is where this process computes and ``codes`` the archive's bucket codes, if
        any (neither is part of the session's state).

        Raises
        ------
        ValueError
            An unknown state version, or ``features`` of another shape than the state's.
        """
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unknown IQR state version {state.get('version')!r}")
        if tuple(features.shape) != (state["n_rows"], state["n_dims"]):
            raise ValueError(
                f"IQR state is for features of shape ({state['n_rows']}, {state['n_dims']}),"
                f" got {tuple(features.shape)}"
            )
        query = state["query_row"]
        if query is None:
            query = np.asarray(state["query_vector"], dtype=features.dtype)
        session = cls(
            features,
            query,
            working_set=state["working_set"],
            neighbours_per_positive=state["neighbours_per_positive"],
            C=state["C"],
            positive_weight=state["positive_weight"],
            device=device,
            codes=codes,
        )
        session.adjudicate(positives=state["positives"], negatives=state["negatives"])
        session._working_rows = check_rows("working_rows", state["working_rows"], state["n_rows"])
        session._seeded = set(state["seeded_rows"])
        if state["seeded_query"]:
            session._seeded.add(None)
        return session


class _RowView:
    """Rows ``rows`` of ``features`` seen as a 2-D array, read lazily slice by slice.

    Lets :meth:`HikSvmReranker.decision_function` read a working set out of a memmap in chunks
    without copying it whole.
    """

    def __init__(self, features, rows: np.ndarray) -> None:
        self._features = features
        self._rows = rows
        self.shape = (rows.size, features.shape[1])
        self.dtype = features.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: slice) -> np.ndarray:
        return np.asarray(self._features[self._rows[key]])
