"""Superclass cells CL, CS, UL, US of the query classes (seed 001, section 5.1).

A query class is *Cluttered* when it is in the top half of the study's query classes by
clutter ("Confuser"), otherwise *Uncluttered*; *Large* when in the top half by mean instance
size, otherwise *Small*. The split itself is ``retrieval.statistics.superclasses`` applied to
the query classes only; a study may instead give the lists explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from analysis.frame import AnalysisError
from retrieval.statistics import SUPERCLASS_CODES
from retrieval.statistics import superclasses as _split_halves

__all__ = ["CELLS", "GROUPS", "PAPER_SUPERCLASSES", "assign_superclasses", "cells_of_tasks"]

CELLS: tuple[str, ...] = SUPERCLASS_CODES
#: The groups whose XAI gain Table 2 reports (seed 001 Table 2, last two columns), plus the
#: two complementary groups for completeness.
GROUPS: dict[str, tuple[str, ...]] = {
    "Cluttered": ("CL", "CS"),
    "Small": ("CS", "US"),
    "Uncluttered": ("UL", "US"),
    "Large": ("CL", "UL"),
}

#: Seed 001 section 5.1: the paper's partition of its 24 query classes.
PAPER_SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "CL": ("dining_table", "microwave", "oven", "sink", "toaster", "vase"),
    "CS": ("book", "chair", "fork", "knife", "spoon", "wine_glass"),
    "UL": ("cake", "keyboard", "laptop", "sandwich", "tv", "umbrella"),
    "US": ("apple", "backpack", "carrot", "clock", "handbag", "orange"),
}


def _from_override(classes: list[str], override: Mapping[str, Iterable[str]]) -> dict[str, str]:
    keys = set(override)
    if keys <= set(CELLS) and keys:
        cell_of: dict[str, str] = {}
        for cell, members in override.items():
            for name in members:
                if name in cell_of and cell_of[name] != cell:
                    raise AnalysisError(
                        f"class {name!r} is listed in both {cell_of[name]} and {cell}"
                    )
                cell_of[str(name)] = cell
    elif keys == {"cluttered", "large"}:
        cluttered = {str(n) for n in override["cluttered"]}
        large = {str(n) for n in override["large"]}
        cell_of = {
            name: ("C" if name in cluttered else "U") + ("L" if name in large else "S")
            for name in classes
        }
    else:
        raise AnalysisError(
            "superclass override must have the keys CL/CS/UL/US (lists of classes) or "
            f"'cluttered' and 'large'; got {sorted(keys)}"
        )
    unassigned = [name for name in classes if name not in cell_of]
    if unassigned:
        raise AnalysisError(f"the superclass lists do not place query class(es) {unassigned}")
    return {name: cell_of[name] for name in classes}


def assign_superclasses(
    query_classes: Iterable[str],
    *,
    clutter: Mapping[str, float] | None = None,
    size: Mapping[str, float] | None = None,
    override: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, str]:
    """The cell (``"CL"``, ``"CS"``, ``"UL"`` or ``"US"``) of every query class.

    Parameters
    ----------
    query_classes : iterable of str
        The study's query classes (duplicates ignored).
    clutter, size : mapping of str to float, optional
        Per-class clutter (mean distinct classes per image, >= 1) and size (mean instance
        area / image area) from the archive; may hold more classes than the study uses, the
        halves are taken over the query classes only (seed 001: "top 12" of 24).
    override : mapping, optional
        Either ``{"cluttered": [...], "large": [...]}`` (the study spec's form) or the four
        lists ``{"CL": [...], "CS": [...], "UL": [...], "US": [...]}`` (e.g.
        :data:`PAPER_SUPERCLASSES`). Takes precedence over ``clutter`` and ``size``.

    Returns
    -------
    dict of str to str
        Class name to cell, ordered by class name.

    Raises
    ------
    AnalysisError
        If neither statistics nor an override are given, or a query class has no value.
    """
    classes = sorted({str(name) for name in query_classes})
    if not classes:
        raise AnalysisError("no query classes to place in superclasses")
    if override:
        return _from_override(classes, override)
    if clutter is None or size is None:
        raise AnalysisError("superclasses need per-class clutter and size, or explicit lists")
    lacking = [name for name in classes if name not in clutter or name not in size]
    if lacking:
        raise AnalysisError(f"no clutter/size statistics for query class(es) {lacking}")
    try:
        return _split_halves(
            {name: clutter[name] for name in classes}, {name: size[name] for name in classes}
        )
    except ValueError as exc:
        raise AnalysisError(f"cannot split the query classes in halves: {exc}") from exc


def cells_of_tasks(
    tasks: pd.DataFrame,
    *,
    override: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, str]:
    """Superclass cells for the classes of a per-task table.

    Uses, in this order: ``override``; the table's ``superclass`` column (one value per
    class); its ``clutter`` and ``size`` columns (one value per class, halves as above).

    Raises
    ------
    AnalysisError
        If none of these is available or a class has two different values.
    """
    classes = tasks["query_class"].unique()
    if override:
        return assign_superclasses(classes, override=override)
    for columns in (("superclass",), ("clutter", "size")):
        if all(c in tasks.columns for c in columns):
            per_class = tasks.groupby("query_class")[list(columns)].nunique(dropna=False)
            ambiguous = sorted(per_class[(per_class > 1).any(axis=1)].index)
            if ambiguous:
                raise AnalysisError(
                    f"column(s) {', '.join(columns)}: class(es) {ambiguous} have several values"
                )
            first = tasks.groupby("query_class")[list(columns)].first()
            if columns == ("superclass",):
                return {str(k): str(v) for k, v in first["superclass"].sort_index().items()}
            if first.isna().any().any():
                break
            return assign_superclasses(
                classes, clutter=first["clutter"].to_dict(), size=first["size"].to_dict()
            )
    raise AnalysisError(
        "cannot place the query classes in superclasses: give the lists (e.g. the paper's), "
        "or a 'superclass' column, or 'clutter' and 'size' columns"
    )
