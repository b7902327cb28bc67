"""Tables 1 and 2 of seed 001, and the per-class ratios behind its Figure 4.

Table 1 (seed 001, section 5.1): for each condition, the number of data points (search tasks)
per superclass cell (qD-raw), the fraction of the condition's data points in the cell (qD),
and per cell ``ratio = qD(with-XAI) / qD(no-XAI)``. With the paper's counts (476 tasks per
condition) this gives its qD and ratio rows exactly.

Table 2 (seed 001, sections 5.1-5.2): per cell and attribute (nP, nA, T), the with / no-XAI
ratio of the attribute's totals "normalized using the ratio attribute for the class from
Table 1", i.e. ``(sum_with / sum_without) / ratio``; this equals the ratio of the per-task
means times ``N_with / N_without`` (1 in a within-subject study). The XAI gain of a group of
cells (Cluttered = CL + CS, Small = CS + US) is ``mean_with / mean_without - 1`` over the
group's tasks, e.g. 18.9 vs 17.7 positives per query for the Cluttered group in section 5.1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.frame import AnalysisError
from analysis.superclasses import CELLS, GROUPS

__all__ = [
    "ATTRIBUTES",
    "TableResult",
    "class_ratios",
    "order_effects",
    "table1",
    "table1_from_counts",
    "table2",
]

ATTRIBUTES: tuple[str, ...] = ("nP", "nA", "T")
_SIZE_COLUMNS = {"L": "size(L)", "S": "size(S)"}
_CONDITIONS = {True: "with-XAI", False: "no-XAI"}


@dataclass
class TableResult:
    """A table laid out like the paper (``frame``), the same numbers in tidy form (``long``),
    and the messages about cells that could not be computed (``notes``; such cells are NaN
    and every one of them is named here)."""

    frame: pd.DataFrame
    long: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _cell_column(tasks: pd.DataFrame, cells: Mapping[str, str]) -> pd.Series:
    cell = tasks["query_class"].map(cells)
    if cell.isna().any():
        lacking = sorted(tasks.loc[cell.isna(), "query_class"].unique())
        raise AnalysisError(f"query class(es) {lacking} have no superclass cell")
    return cell


def table1_from_counts(
    with_counts: Mapping[str, int], without_counts: Mapping[str, int]
) -> TableResult:
    """Table 1 from the number of data points per cell and condition.

    Parameters
    ----------
    with_counts, without_counts : mapping of cell code to int
        Tasks per cell (``"CL"``, ``"CS"``, ``"UL"``, ``"US"``; absent cells count 0).

    Returns
    -------
    TableResult
        ``frame`` has rows (qD-raw | qD | ratio) x (C | U) and columns (with-XAI | no-XAI) x
        (size(L) | size(S)); the ratio rows fill the with-XAI columns only, as in the paper.
    """
    raw = {
        True: {c: int(with_counts.get(c, 0)) for c in CELLS},
        False: {c: int(without_counts.get(c, 0)) for c in CELLS},
    }
    notes: list[str] = []
    rows = []
    qd: dict[bool, dict[str, float]] = {}
    for is_xai, counts in raw.items():
        total = sum(counts.values())
        if total == 0:
            notes.append(f"Table 1: no {_CONDITIONS[is_xai]} data points, qD is undefined")
        qd[is_xai] = {c: counts[c] / total if total else np.nan for c in CELLS}
        for c in CELLS:
            rows.append(("qD-raw", c, _CONDITIONS[is_xai], float(counts[c])))
            rows.append(("qD", c, _CONDITIONS[is_xai], qd[is_xai][c]))
    for c in CELLS:
        denominator = qd[False][c]
        if not denominator or np.isnan(denominator):
            notes.append(f"Table 1: ratio of cell {c} is undefined (no no-XAI data points)")
            ratio = np.nan
        else:
            ratio = qd[True][c] / denominator
        rows.append(("ratio", c, "with-XAI", ratio))
    long = pd.DataFrame(rows, columns=["attribute", "cell", "condition", "value"])
    frame = pd.DataFrame(
        index=pd.MultiIndex.from_product([["qD-raw", "qD", "ratio"], ["C", "U"]]),
        columns=pd.MultiIndex.from_product([["with-XAI", "no-XAI"], ["size(L)", "size(S)"]]),
        dtype=float,
    )
    for attribute, cell, condition, value in rows:
        frame.loc[(attribute, cell[0]), (condition, _SIZE_COLUMNS[cell[1]])] = value
    frame.index.names = ["attr", "clutter"]
    return TableResult(frame=frame, long=long, notes=notes)


def table1(tasks: pd.DataFrame, cells: Mapping[str, str]) -> TableResult:
    """Table 1 of a per-task table; ``cells`` maps query class to cell code."""
    cell = _cell_column(tasks, cells)
    counts = cell.groupby(tasks["is_xai"]).value_counts()
    per = {flag: counts.get(flag, pd.Series(dtype=int)).to_dict() for flag in (True, False)}
    return table1_from_counts(per[True], per[False])


def table2(
    tasks: pd.DataFrame,
    cells: Mapping[str, str],
    *,
    attributes: Iterable[str] = ATTRIBUTES,
    groups: Iterable[str] = ("Cluttered", "Small"),
) -> TableResult:
    """Table 2: normalised with / no-XAI ratios per cell and the XAI gain per group.

    Parameters
    ----------
    tasks : DataFrame
        Validated per-task table (``analysis.frame``).
    cells : mapping of str to str
        Query class to cell code.
    attributes : iterable of str, default ("nP", "nA", "T")
    groups : iterable of str, default ("Cluttered", "Small")
        Keys of ``analysis.superclasses.GROUPS``.

    Returns
    -------
    TableResult
        ``frame``: rows attribute x (C | U); columns ("ratio XAI/no-XAI", size(L) | size(S))
        and ("XAI gain for", <group>), the gains (fractions, 0.065 = 6.5 %) on the C rows as
        the paper prints them. ``long``: one row per ratio or gain with the means and counts.
    """
    attributes, groups = list(attributes), list(groups)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise AnalysisError(f"unknown group(s) {unknown}; known: {sorted(GROUPS)}")
    cell = _cell_column(tasks, cells)
    t1 = table1(tasks, cells)
    notes = list(t1.notes)
    count_ratio = t1.long[t1.long["attribute"] == "ratio"].set_index("cell")["value"]
    rows = []
    for attribute in attributes:
        for c in CELLS:
            part = tasks[cell == c]
            sums = part.groupby("is_xai")[attribute].sum()
            with_sum, without_sum = float(sums.get(True, 0.0)), float(sums.get(False, 0.0))
            if without_sum == 0 or np.isnan(count_ratio[c]):
                notes.append(
                    f"Table 2: {attribute} ratio of cell {c} is undefined "
                    f"(no-XAI total {without_sum:g}, Table 1 ratio {count_ratio[c]:.3g})"
                )
                value = np.nan
            else:
                value = with_sum / without_sum / count_ratio[c]
            rows.append((attribute, c, "ratio", value, *_means(part, attribute)))
        for group in groups:
            part = tasks[cell.isin(GROUPS[group])]
            with_mean, without_mean, n_with, n_without = _means(part, attribute)
            if n_with == 0 or n_without == 0 or without_mean == 0:
                notes.append(
                    f"Table 2: {attribute} gain of group {group} is undefined "
                    f"(with-XAI n={n_with}, no-XAI n={n_without}, no-XAI mean {without_mean:g})"
                )
                value = np.nan
            else:
                value = with_mean / without_mean - 1.0
            rows.append(
                (attribute, group, "gain", value, with_mean, without_mean, n_with, n_without)
            )
    long = pd.DataFrame(
        rows,
        columns=[
            "attribute",
            "cell",
            "kind",
            "value",
            "with_mean",
            "without_mean",
            "n_with",
            "n_without",
        ],
    )
    columns = [("ratio XAI/no-XAI", "size(L)"), ("ratio XAI/no-XAI", "size(S)")]
    columns += [("XAI gain for", f"{g} ({g[0]})") for g in groups]
    frame = pd.DataFrame(
        index=pd.MultiIndex.from_product([attributes, ["C", "U"]], names=["attr", "clutter"]),
        columns=pd.MultiIndex.from_tuples(columns),
        dtype=float,
    )
    for attribute, name, kind, value, *_ in rows:
        if kind == "ratio":
            frame.loc[(attribute, name[0]), ("ratio XAI/no-XAI", _SIZE_COLUMNS[name[1]])] = value
        else:
            frame.loc[(attribute, "C"), ("XAI gain for", f"{name} ({name[0]})")] = value
    return TableResult(frame=frame, long=long, notes=notes)


def _means(part: pd.DataFrame, attribute: str) -> tuple[float, float, int, int]:
    with_values = part.loc[part["is_xai"], attribute]
    without_values = part.loc[~part["is_xai"], attribute]
    return (
        float(with_values.mean()) if len(with_values) else np.nan,
        float(without_values.mean()) if len(without_values) else np.nan,
        len(with_values),
        len(without_values),
    )


def class_ratios(tasks: pd.DataFrame, *, attribute: str = "nP") -> TableResult:
    """Per query class: ``mean_with / mean_without`` of ``attribute`` (Figure 4's x axis).

    Returns
    -------
    TableResult
        ``frame`` (= ``long``) indexed by class with columns ``ratio``, ``with_mean``,
        ``without_mean``, ``n_with``, ``n_without`` and, when the table has them,
        ``clutter`` and ``size``. A class missing a condition or with a zero no-XAI mean
        gets NaN and a note.
    """
    grouped = tasks.groupby(["query_class", "is_xai"])[attribute].agg(["mean", "size"])
    frame = pd.DataFrame(index=sorted(tasks["query_class"].unique()))
    frame.index.name = "query_class"
    for flag, prefix in ((True, "with"), (False, "without")):
        part = grouped.xs(flag, level="is_xai") if flag in grouped.index.levels[1] else None
        frame[f"{prefix}_mean"] = np.nan if part is None else part["mean"]
        frame[f"n_{prefix}"] = 0 if part is None else part["size"]
    frame[["n_with", "n_without"]] = frame[["n_with", "n_without"]].fillna(0).astype(int)
    valid = (frame["n_with"] > 0) & (frame["n_without"] > 0) & (frame["without_mean"] > 0)
    frame["ratio"] = np.where(
        valid, frame["with_mean"] / frame["without_mean"].where(valid, 1), np.nan
    )
    notes = [
        f"class {name}: {attribute} ratio undefined (with-XAI n={row.n_with}, "
        f"no-XAI n={row.n_without}, no-XAI mean {row.without_mean:g})"
        for name, row in frame[~valid].iterrows()
    ]
    for column in ("clutter", "size"):
        if column in tasks.columns:
            frame[column] = tasks.groupby("query_class")[column].first()
    return TableResult(frame=frame, long=frame.reset_index(), notes=notes)


def order_effects(tasks: pd.DataFrame) -> pd.DataFrame:
    """nP, nA and T by position in the HIT and condition: order effects (seed 001 section 4
    randomised the order of the two conditions; this table shows whether the order mattered).

    Parameters
    ----------
    tasks : DataFrame
        The per-task table (``analysis.frame``), with ``position``, ``condition``, ``nP``,
        ``nA`` and ``T``.

    Returns
    -------
    DataFrame
        One row per (position, condition), sorted: ``tasks`` (count), and for each of nP, nA
        and T [s] its ``<attribute>_mean`` and ``<attribute>_sd`` (sample standard deviation,
        empty for a single task).
    """
    missing = [c for c in ("position", "condition", "nP", "nA", "T") if c not in tasks.columns]
    if missing:
        raise AnalysisError(f"the order-effects table needs column(s) {', '.join(missing)}")
    grouped = tasks.groupby(["position", "condition"], sort=True)
    out = pd.DataFrame({"tasks": grouped.size()})
    for attribute in ("nP", "nA", "T"):
        out[f"{attribute}_mean"] = grouped[attribute].mean().astype(float)
        out[f"{attribute}_sd"] = grouped[attribute].std(ddof=1).astype(float)
    return out.reset_index()
