"""The whole analysis of a per-task table in one call: cells, tables, tests, Likert summaries.

Everything that cannot be computed (an empty cell, a test without enough data points) is
reported in ``AnalysisResult.notes`` and left empty in its table; nothing raises unless the
input itself is invalid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis.frame import validate_tasks
from analysis.likert import likert_summary, validate_likert
from analysis.permutation import permutation_tests
from analysis.superclasses import cells_of_tasks
from analysis.tables import (
    ATTRIBUTES,
    TableResult,
    class_ratios,
    order_effects,
    table1,
    table2,
)

__all__ = ["AnalysisResult", "analysis_from_tasks"]


@dataclass
class AnalysisResult:
    """Outputs of :func:`analysis_from_tasks`.

    Attributes
    ----------
    tasks : DataFrame
        The validated per-task table, with its ``superclass`` column filled in.
    cells : dict of str to str
        Query class to superclass cell.
    table1, table2, class_ratios : TableResult
        Seed 001 Tables 1 and 2 and the per-class nP ratios of its Figure 4.
    order_effects : DataFrame
        nP, nA and T by position and condition (``analysis.tables.order_effects``).
    tests : DataFrame
        Stratified permutation tests, one row per (attribute, group).
    likert : DataFrame or None
        Likert summary per question and condition.
    responses : DataFrame or None
        The validated Likert responses (for Figure 5).
    parameters : dict
        The settings used (permutations, alternative, seed, groups).
    notes : list of str
        Every message about something that could not be computed.
    """

    tasks: pd.DataFrame
    cells: dict[str, str]
    table1: TableResult
    table2: TableResult
    class_ratios: TableResult
    tests: pd.DataFrame
    likert: pd.DataFrame | None = None
    responses: pd.DataFrame | None = None
    order_effects: pd.DataFrame | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def analysis_from_tasks(
    tasks: pd.DataFrame,
    *,
    responses: pd.DataFrame | None = None,
    superclasses: Mapping[str, Iterable[str]] | None = None,
    conditions: Mapping[str, bool] | None = None,
    groups: Iterable[str] = ("Cluttered", "Small"),
    n_permutations: int = 10_000,
    alternative: str = "greater",
    random_state: int | None = 0,
) -> AnalysisResult:
    """Run metrics-to-tables, the permutation tests and the Likert summaries.

    Parameters
    ----------
    tasks : DataFrame
        Per-task table (``analysis.frame``); validated here.
    responses : DataFrame, optional
        Likert responses (``analysis.likert``).
    superclasses : mapping, optional
        Explicit cells (see ``analysis.superclasses.assign_superclasses``); otherwise the
        table's ``superclass`` or ``clutter``/``size`` columns decide.
    conditions : mapping of str to bool, optional
        Known condition names and whether they show explanations.
    groups : iterable of str, default ("Cluttered", "Small")
        Groups whose gain Table 2 and the tests report.
    n_permutations, alternative, random_state
        See ``analysis.permutation.permutation_tests``.

    Returns
    -------
    AnalysisResult

    Raises
    ------
    AnalysisError
        Only for invalid input (missing columns, bad values, unplaceable classes).
    """
    groups = list(groups)
    data = validate_tasks(tasks, conditions=conditions)
    cells = cells_of_tasks(data, override=superclasses)
    data["superclass"] = data["query_class"].map(cells)
    first = table1(data, cells)
    second = table2(data, cells, groups=groups)
    ratios = class_ratios(data)
    tests, test_notes = permutation_tests(
        data,
        cells,
        groups=groups,
        n_permutations=n_permutations,
        alternative=alternative,
        random_state=random_state,
    )
    likert = checked = None
    if responses is not None:
        checked = validate_likert(responses)
        likert = likert_summary(checked)
    notes = list(dict.fromkeys([*first.notes, *second.notes, *ratios.notes, *test_notes]))
    return AnalysisResult(
        tasks=data,
        cells=cells,
        table1=first,
        table2=second,
        class_ratios=ratios,
        tests=tests,
        likert=likert,
        responses=checked,
        order_effects=order_effects(data),
        parameters={
            "n_permutations": n_permutations,
            "alternative": alternative,
            "random_state": random_state,
            "groups": groups,
            "attributes": list(ATTRIBUTES),
            "n_tasks": len(data),
        },
        notes=notes,
    )
