"""Stratified permutation tests of the XAI gain (seed 001, section 4).

Null hypothesis: the attribute (nP, nA or T) does not depend on the condition. Each
permutation reassigns the with-XAI / no-XAI labels *within each query class*, so every class
keeps its number of with-XAI and no-XAI data points ("preserving the overall query
distribution", sampling without replacement), and recomputes the group's gain
``mean_with / mean_without - 1`` (as ``analysis.tables``). Seed 001 used 10,000 permutations
and alpha = 0.1.

Permutations are drawn by ``analysis.stratified`` (vectorised selection sampling over a
seeded numpy Generator; its docstring defines the random stream).

p-values count the observed labelling as one of the permutations (Phipson and Smyth's +1
correction, as ``scipy.stats.permutation_test`` does for random permutations):
``greater``: ``(#{null >= observed} + 1) / (n + 1)``; ``less``: the same with ``<=``;
``two-sided``: ``min(1, 2 * min(p_greater, p_less))``. Comparisons allow a relative slack
of 1e-12 so that numerically equal gains tie. A permutation whose no-XAI total is 0 has an
infinite gain (larger than any finite one) or, when both totals are 0, an undefined one
(counted as not extreme); both kinds are reported in ``n_undefined``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.frame import AnalysisError
from analysis.stratified import null_with_sums
from analysis.superclasses import GROUPS
from analysis.tables import ATTRIBUTES

__all__ = ["PermutationResult", "permutation_test", "permutation_tests"]

_ALTERNATIVES = ("greater", "less", "two-sided")
_SLACK = 1e-12


@dataclass(frozen=True)
class PermutationResult:
    """Outcome of one stratified permutation test.

    Attributes
    ----------
    statistic : float
        Observed gain ``mean_with / mean_without - 1`` (0.065 = 6.5 %).
    pvalue : float
        In (0, 1], with the +1 correction (module docstring).
    null_distribution : ndarray of shape (n_permutations,)
        Gains under the permutations (inf / NaN where undefined).
    n_with, n_without, n_permutations, n_undefined : int
    alternative : str
    """

    statistic: float
    pvalue: float
    null_distribution: np.ndarray
    n_with: int
    n_without: int
    n_permutations: int
    n_undefined: int
    alternative: str


def _check(values: np.ndarray, is_xai: np.ndarray, strata: np.ndarray, what: str) -> None:
    n_with, n_without = int(is_xai.sum()), int((~is_xai).sum())
    if n_with < 2 or n_without < 2:
        raise AnalysisError(
            f"{what}: too few data points for a permutation test "
            f"(with-XAI {n_with}, no-XAI {n_without}; need at least 2 each)"
        )
    mixed = pd.Series(is_xai).groupby(strata).nunique().max()
    if mixed < 2:
        raise AnalysisError(
            f"{what}: no query class has data points in both conditions, so shuffling the "
            "labels within classes cannot change the gain"
        )
    without = values[~is_xai].mean(axis=0)
    if np.any(without == 0):
        raise AnalysisError(f"{what}: the gain is undefined (no-XAI mean is 0)")


def _gain(with_sum, total, n_with, n_without):
    with np.errstate(divide="ignore", invalid="ignore"):
        return (with_sum / n_with) / ((total - with_sum) / n_without) - 1.0


def _pvalue(null: np.ndarray, observed: float, alternative: str) -> float:
    slack = abs(observed) * _SLACK
    n = null.shape[0]
    greater = (np.count_nonzero(null >= observed - slack) + 1) / (n + 1)
    less = (np.count_nonzero(null <= observed + slack) + 1) / (n + 1)
    if alternative == "greater":
        return greater
    if alternative == "less":
        return less
    return min(1.0, 2.0 * min(greater, less))


def _setup(alternative: str, n_permutations: int, random_state) -> np.random.Generator:
    if alternative not in _ALTERNATIVES:
        raise AnalysisError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    if n_permutations < 1:
        raise AnalysisError(f"n_permutations must be >= 1, got {n_permutations}")
    return np.random.default_rng(random_state)


def permutation_test(
    values,
    is_xai,
    strata,
    *,
    n_permutations: int = 10_000,
    alternative: str = "greater",
    random_state=None,
) -> PermutationResult:
    """Stratified permutation test of one attribute's gain over the given data points.

    Parameters
    ----------
    values : array_like of shape (n,)
        The attribute per data point (e.g. nP per search task).
    is_xai : array_like of bool, shape (n,)
        Condition label per data point.
    strata : array_like of shape (n,)
        Stratum per data point (the query class); labels are shuffled within strata.
    n_permutations : int, default 10000
    alternative : {"greater", "less", "two-sided"}, default "greater"
        "greater" tests whether explanations increase the attribute.
    random_state : int, numpy Generator or None

    Returns
    -------
    PermutationResult

    Raises
    ------
    AnalysisError
        Too few data points, no stratum holding both conditions, or a zero no-XAI mean.
    """
    rng = _setup(alternative, n_permutations, random_state)
    values = np.asarray(values, dtype=float)
    is_xai = np.asarray(is_xai, dtype=bool)
    if values.ndim != 1 or values.shape != is_xai.shape or values.shape != np.shape(strata):
        raise AnalysisError("values, is_xai and strata must be 1-D of the same length")
    codes, uniques = pd.factorize(pd.Series(np.asarray(strata)))
    _check(values[:, None], is_xai, codes, "permutation test")
    sums = null_with_sums(values[:, None], is_xai, codes, len(uniques), n_permutations, rng)
    with_sum = sums.sum(axis=1)[:, 0]
    n_with, n_without = int(is_xai.sum()), int((~is_xai).sum())
    null = _gain(with_sum, values.sum(), n_with, n_without)
    observed = float(_gain(values[is_xai].sum(), values.sum(), n_with, n_without))
    return PermutationResult(
        statistic=observed,
        pvalue=_pvalue(null, observed, alternative),
        null_distribution=null,
        n_with=n_with,
        n_without=n_without,
        n_permutations=n_permutations,
        n_undefined=int(np.count_nonzero(~np.isfinite(null))),
        alternative=alternative,
    )


def permutation_tests(
    tasks: pd.DataFrame,
    cells: Mapping[str, str],
    *,
    attributes: Iterable[str] = ATTRIBUTES,
    groups: Iterable[str] = ("Cluttered", "Small"),
    n_permutations: int = 10_000,
    alternative: str = "greater",
    random_state=None,
) -> tuple[pd.DataFrame, list[str]]:
    """The stratified test for every attribute and group of a per-task table.

    One set of permutations of the tasks in the tested groups (one key per task and
    permutation) serves every attribute and group, so the tests cost about as much as one.

    Returns
    -------
    results : DataFrame
        One row per (attribute, group): ``gain``, ``p_value``, ``n_with``, ``n_without``,
        ``n_permutations``, ``n_undefined``, ``alternative``, ``note``. A test that cannot
        be run has an empty p-value and says why in ``note``.
    notes : list of str
        The same messages, for printing.
    """
    rng = _setup(alternative, n_permutations, random_state)
    attributes, groups = list(attributes), list(groups)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise AnalysisError(f"unknown group(s) {unknown}; known: {sorted(GROUPS)}")
    # Only the tasks of the tested groups are shuffled (classes outside them cannot matter).
    tested = {cell for group in groups for cell in GROUPS[group]}
    tasks = tasks[tasks["query_class"].map(cells).isin(tested)]
    values = tasks[attributes].to_numpy(dtype=float)
    is_xai = tasks["is_xai"].to_numpy(dtype=bool)
    codes, classes = pd.factorize(tasks["query_class"])
    sums = null_with_sums(values, is_xai, codes, len(classes), n_permutations, rng)
    class_cells = np.array([cells.get(name) for name in classes])
    rows, notes = [], []
    for group in groups:
        in_strata = np.isin(class_cells, GROUPS[group])
        mask = in_strata[codes]
        group_with = sums[:, in_strata].sum(axis=1)
        for a, attribute in enumerate(attributes):
            v, x = values[mask, a], is_xai[mask]
            row = {"attribute": attribute, "group": group, "n_with": int(x.sum()),
                   "n_without": int((~x).sum()), "n_permutations": n_permutations,
                   "alternative": alternative, "gain": np.nan, "p_value": np.nan,
                   "n_undefined": 0, "note": ""}  # fmt: skip
            try:
                _check(v[:, None], x, codes[mask], f"{attribute}, group {group}")
            except AnalysisError as exc:
                row["note"] = str(exc)
                notes.append(str(exc))
                rows.append(row)
                continue
            args = (v.sum(), row["n_with"], row["n_without"])
            null = _gain(group_with[:, a], *args)
            row["gain"] = float(_gain(v[x].sum(), *args))
            row["p_value"] = _pvalue(null, row["gain"], alternative)
            row["n_undefined"] = int(np.count_nonzero(~np.isfinite(null)))
            rows.append(row)
    return pd.DataFrame(rows), notes
