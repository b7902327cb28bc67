"""Reads of a study's refine rounds: what each round ran, for the exports (``rounds.csv``).

One row per refine round (round 1 and later) of the study's tasks: the task, its position and
condition, the round's number and status, the scope it ran in (``archive`` or ``pool``), the
IQR working set it ranked (rows), seconds queued (request to the start of computing) and
computing (IQR and maps), the maps computed on demand for it, hand-overs to the queue, and
whether it passed the study's latency budget. Worker ids are not in it (join on ``task``).
"""

from __future__ import annotations

import pandas as pd

from studyplatform.studies.models import IQRRound, Study

ROUND_COLUMNS = [
    "task",
    "position",
    "condition",
    "round",
    "status",
    "scope",
    "working_set_size",
    "queued_seconds",
    "seconds",
    "maps_on_demand",
    "attempts",
    "budget_s",
    "over_budget",
]


def study_round_table(*, study: Study) -> pd.DataFrame:
    """The study's refine rounds (columns :data:`ROUND_COLUMNS`), by task and round."""
    rounds = (
        IQRRound.objects.filter(task__assignment__study=study, number__gte=1)
        .select_related("task__condition")
        .order_by("task_id", "number")
    )
    rows = []
    for round_ in rounds:
        queued = round_.queued_seconds
        rows.append(
            {
                "task": round_.task_id,
                "position": round_.task.position,
                "condition": round_.task.condition.name,
                "round": round_.number,
                "status": round_.status,
                "scope": round_.scope,
                "working_set_size": round_.working_set_size,
                "queued_seconds": queued,
                "seconds": round_.seconds if round_.status == IQRRound.Status.READY else None,
                "maps_on_demand": round_.maps_on_demand,
                "attempts": round_.attempts,
                "budget_s": study.round_budget_s,
                "over_budget": None
                if round_.status != IQRRound.Status.READY
                else (queued or 0.0) + round_.seconds > study.round_budget_s,
            }
        )
    return pd.DataFrame(rows, columns=ROUND_COLUMNS)
