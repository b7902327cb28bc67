"""The Likert answers of a study in the responses schema of ``analysis.likert``."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from analysis.exports import pseudonymise
from studyplatform.studies.models import Response, SearchTask, Study

from .common import DEFAULT_STATUSES, study_salt

__all__ = ["study_likert_table"]


def study_likert_table(
    *,
    study: Study,
    pseudonymise_workers: bool = True,
    statuses: Iterable[str] = DEFAULT_STATUSES,
) -> pd.DataFrame:
    """Likert answers of ``study`` in the responses schema of ``analysis.likert``.

    Sub-task answers carry their task's condition, ``is_xai`` and query class. A final-
    questionnaire answer is about both tasks of its HIT, so it appears once per task of the
    assignment (seed 001 Figure 5 sets each worker's preference beside both classes they
    searched), with ``questionnaire`` = ``final``. Free-text answers are left out.

    Returns
    -------
    DataFrame
        Columns ``question``, ``value`` (1..points), ``points`` (5 or 6), ``condition``,
        ``is_xai``, ``query_class``, ``worker``, ``assignment``, ``questionnaire``.
    """
    base = Response.objects.filter(
        assignment__study=study,
        assignment__status__in=list(statuses),
        value__isnull=False,
        question__scale__in=["likert5", "likert6"],
    )
    fields = ["assignment_id", "question__code", "question__scale", "value",
              "question__questionnaire__kind", "assignment__participant__source",
              "assignment__participant__external_id"]  # fmt: skip
    task_fields = ["condition__name", "condition__method", "query__category__name"]
    columns = ["assignment", "question", "scale", "value", "questionnaire", "source",
               "external_id", "condition", "method", "query_class"]  # fmt: skip
    per_task = base.filter(task__isnull=False).values_list(
        *fields, *(f"task__{f}" for f in task_fields)
    )
    final = base.filter(task__isnull=True).values_list(*fields)
    searches = SearchTask.objects.filter(
        assignment__study=study, assignment__status__in=list(statuses)
    ).values_list("assignment_id", *task_fields)
    tasks_of: dict[int, list[tuple]] = {}
    for assignment, *rest in searches:
        tasks_of.setdefault(assignment, []).append(tuple(rest))
    rows = [tuple(r) for r in per_task]
    rows += [(*r, *task) for r in final for task in tasks_of.get(r[0], [])]
    table = pd.DataFrame(rows, columns=columns)
    table["points"] = table["scale"].map({"likert5": 5, "likert6": 6}).astype(np.int64)
    table["is_xai"] = table["method"].astype(bool)
    table["worker"] = table["source"] + ":" + table["external_id"]
    if pseudonymise_workers and not table.empty:
        table["worker"] = pseudonymise(table["worker"], salt=study_salt(study=study))
    table["assignment"] = table["assignment"].astype(str)
    keep = ["question", "value", "points", "condition", "is_xai", "query_class", "worker",
            "assignment", "questionnaire"]  # fmt: skip
    return (
        table[keep].sort_values(["assignment", "questionnaire", "question"]).reset_index(drop=True)
    )
