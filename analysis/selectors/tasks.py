"""The per-task table of a study (``analysis.frame`` schema) read from its rows.

:func:`study_task_table` builds the per-task table of every completed search task of a study
in a fixed number of queries (tasks, judgement/shown/end events, ground-truth annotations of
the query classes, IQR rankings), whatever the number of HITs, and computes the metrics with
vectorised pandas operations. Definitions (seed 001 section 4, seed 000 Eq. 5):

* **included tasks**: tasks that ended (``SearchTask.ended_at`` set or a ``task_end`` event)
  in assignments whose status is in ``statuses`` (default submitted and approved: a rejected,
  returned or abandoned HIT is not data).
* **judgements**: ``marked_relevant``, ``marked_not_relevant`` and ``unmarked`` events in the
  order the server stored them (event id), the order in which ``studyplatform`` itself replays
  marks for IQR; the last judgement of an image wins, ``unmarked`` withdraws it.
* **nP**: images relevant at the end whose annotations hold the task's target class;
  **claimed_positives**: images relevant at the end; **precision** = nP / claimed (empty when
  nothing was claimed).
* **nA**: images adjudicated (seed 001 section 4): images holding a relevant or not-relevant
  judgement at the end, as ``analysis.metrics`` counts it; **judgement_events**: every
  ``marked_relevant``/``marked_not_relevant`` event, a change of mind counted again.
* **T** [s]: from the task's first ``shown`` event to ``SearchTask.ended_at`` (else its first
  ``task_end`` event), both on the server clock (``server_time``): both ends are recorded by the
  server, and mixing in the browser's ``client_time`` would add the browser's clock skew.
* **rounds_used**: refines asked for (the larger of the ``refine`` events and the highest
  round shown).
* **acc_round_<r>**: seed 000 Eq. 5 (``retrieval.accuracy.retrieval_accuracy``) on the top
  N = 50 of the ranking round r produced over the archive (``IQRRound.top_ranking``: nearest
  neighbours in round 0, the SVM's order after each refine, shown or not, judged images
  included); a shorter list still divides by N; empty for rounds not reached and for rounds
  stored without their top 50.
* **worker**: ``<source>:<external id>``, pseudonymised by default with
  ``analysis.exports.pseudonymise`` under ``analysis.selectors.common.study_salt``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from django.db.models import Count, Max, Min, Q

from analysis.exports import pseudonymise
from analysis.frame import TASK_COLUMNS, AnalysisError
from analysis.superclasses import assign_superclasses
from retrieval.accuracy import ACCURACY_TOP_N, retrieval_accuracy
from retrieval.models import Annotation, Category
from studyplatform.studies.models import Event, IQRRound, SearchTask, Study

from .common import DEFAULT_STATUSES, study_salt

__all__ = ["study_task_table"]

_JUDGEMENT_TYPES = ("marked_relevant", "marked_not_relevant", "unmarked")


def _task_queryset(study: Study, statuses: Iterable[str]):
    ended_by_event = Event.objects.filter(
        task__assignment__study=study, type=Event.Type.TASK_END
    ).values("task_id")
    return SearchTask.objects.filter(
        assignment__study=study, assignment__status__in=list(statuses)
    ).filter(Q(ended_at__isnull=False) | Q(pk__in=ended_by_event))


def _tasks(included) -> pd.DataFrame:
    rows = included.values_list(
            "id", "position", "ended_at", "assignment_id", "assignment__participant__source",
            "assignment__participant__external_id", "assignment__task_pair__number",
            "condition__name", "condition__method", "query__image_id", "query__category_id",
            "query__category__name",
    )  # fmt: skip
    columns = ["task", "position", "ended_at", "assignment", "source", "external_id",
               "task_pair", "condition", "method", "query_image", "category", "query_class"]  # fmt: skip
    tasks = pd.DataFrame(list(rows), columns=columns)
    tasks["ended_at"] = pd.to_datetime(tasks["ended_at"], utc=True)
    return tasks.sort_values(["assignment", "position"]).reset_index(drop=True)


def _timings(study: Study, tasks: pd.DataFrame) -> pd.DataFrame:
    """Per task: first ``shown`` and ``task_end`` server times, highest round shown, refines;
    aggregated by the database (one row per task instead of one per event)."""
    shown, end, refine = Q(type="shown"), Q(type="task_end"), Q(type="refine")
    rows = (
        Event.objects.filter(
            task__assignment__study=study, type__in=["shown", "task_end", "refine"]
        )
        .order_by()
        .values("task_id")
        .annotate(
            first_shown=Min("server_time", filter=shown),
            first_end=Min("server_time", filter=end),
            top_round=Max("iqr_round", filter=shown),
            refines=Count("id", filter=refine),
        )
        .values_list("task_id", "first_shown", "first_end", "top_round", "refines")
    )
    columns = ["task", "first_shown", "first_end", "top_round", "refines"]
    timings = pd.DataFrame(list(rows), columns=columns).set_index("task")
    timings = timings.reindex(pd.Index(tasks["task"], name="task"))
    for name in ("first_shown", "first_end"):
        timings[name] = pd.to_datetime(timings[name], utc=True)
    return timings


def _judgements(study: Study, tasks: pd.DataFrame) -> pd.DataFrame:
    """Judgement events (task, type, image) of the included tasks, in the order stored."""
    rows = (
        Event.objects.filter(task__assignment__study=study, type__in=_JUDGEMENT_TYPES)
        .order_by("id")
        .values_list("task_id", "type", "image_id")
    )
    marks = pd.DataFrame(list(rows), columns=["task", "type", "image"])
    return marks[marks["task"].isin(tasks["task"])]


def _pair_keys(images, categories) -> np.ndarray:
    """One int64 per (image id, category id) pair, for fast membership tests."""
    return np.asarray(images, dtype=np.int64) * (1 << 32) + np.asarray(categories, dtype=np.int64)


def _truth(study: Study, categories: Iterable[int]) -> np.ndarray:
    """Sorted keys of the archive's (image, category) pairs for the query classes."""
    rows = Annotation.objects.filter(
        archive=study.archive_id, category_id__in=sorted({int(c) for c in categories})
    ).values_list("image_id", "category_id")
    pairs = np.array(list(rows), dtype=np.int64).reshape(-1, 2)
    return np.unique(_pair_keys(pairs[:, 0], pairs[:, 1]))


def _judgement_metrics(tasks, marks, truth) -> pd.DataFrame:
    category_of = tasks.set_index("task")["category"]
    final = marks.drop_duplicates(["task", "image"], keep="last")
    relevant = final[final["type"] == "marked_relevant"]
    positive = np.isin(_pair_keys(relevant["image"], relevant["task"].map(category_of)), truth)
    index = pd.Index(tasks["task"], name="task")
    per_task = pd.DataFrame(index=index)
    per_task["claimed_positives"] = relevant.groupby("task").size()
    per_task["nP"] = pd.Series(positive, index=relevant.index).groupby(relevant["task"]).sum()
    per_task["nA"] = final[final["type"] != "unmarked"].groupby("task").size()
    per_task["judgement_events"] = marks[marks["type"] != "unmarked"].groupby("task").size()
    per_task = per_task.reindex(index).fillna(0).astype(np.int64)
    claimed = per_task["claimed_positives"]
    per_task["precision"] = (per_task["nP"] / claimed.where(claimed > 0)).astype(float)
    return per_task


def _durations(tasks: pd.DataFrame, timings: pd.DataFrame) -> pd.Series:
    end = tasks.set_index("task")["ended_at"].fillna(timings["first_end"])
    start = timings["first_shown"]
    lacking = start.isna()
    if lacking.any():
        raise AnalysisError(
            f"search task(s) {_ids(start.index[lacking][:5])} ended without any results shown"
        )
    return ((end - start).dt.total_seconds()).clip(lower=0.0)


def _ids(values) -> list[int]:
    return [int(v) for v in values]


def _accuracy(study: Study, tasks: pd.DataFrame, truth: np.ndarray) -> pd.DataFrame:
    """Seed 000 Eq. 5 per (task, round) on the top 50 of the ranking the round produced."""
    wanted = set(_ids(tasks["task"]))
    rows = [
        row
        for row in IQRRound.objects.filter(task__assignment__study=study).values_list(
            "task_id", "number", "top_ranking"
        )
        if row[0] in wanted and row[2]
    ]
    category = tasks.set_index("task")["category"]
    values = []
    for task, _, top in rows:
        images = np.asarray(top[:ACCURACY_TOP_N], dtype=np.int64)
        holding = np.isin(_pair_keys(images, np.full(images.size, category[task])), truth)
        values.append(retrieval_accuracy(images, set(images[holding].tolist()), n=ACCURACY_TOP_N))
    long = pd.DataFrame(
        {"task": [t for t, _, _ in rows], "round": [r for _, r, _ in rows], "accuracy": values},
    )
    accuracy = long.pivot(index="task", columns="round", values="accuracy")
    last = max([int(study.iqr_rounds), *accuracy.columns])
    accuracy = accuracy.reindex(columns=range(last + 1))
    accuracy.columns = [f"acc_round_{r}" for r in accuracy.columns]
    return accuracy.reindex(pd.Index(tasks["task"], name="task")).astype(float)


def _statistics(study: Study, tasks: pd.DataFrame) -> pd.DataFrame:
    stats = pd.DataFrame(
        list(
            Category.objects.filter(pk__in=_ids(tasks["category"].unique())).values_list(
                "name", "clutter", "size"
            )
        ),
        columns=["query_class", "clutter", "size"],
    ).set_index("query_class")
    override = study.superclasses or None
    complete = stats.notna().all(axis=1).all()
    if override or complete:
        cells = assign_superclasses(
            stats.index, clutter=stats["clutter"].to_dict(), size=stats["size"].to_dict(),
            override=override,
        )  # fmt: skip
        stats["superclass"] = pd.Series(cells)
    return stats


def study_task_table(
    *,
    study: Study,
    pseudonymise_workers: bool = True,
    statuses: Iterable[str] = DEFAULT_STATUSES,
) -> pd.DataFrame:
    """The per-task table (``analysis.frame`` schema) of ``study``'s completed search tasks.

    Parameters
    ----------
    study : Study
    pseudonymise_workers : bool, default True
        Replace ``worker`` by its salted pseudonym (:func:`study_salt`).
    statuses : iterable of str, default submitted and approved
        Assignment statuses whose tasks are included.

    Returns
    -------
    DataFrame
        One row per included task, ordered by assignment then position, with
        :data:`analysis.frame.TASK_COLUMNS`, ``clutter`` and ``size`` (the query class's
        archive statistics, empty when not computed), ``superclass`` (when the study gives an
        override or every query class has statistics) and ``acc_round_0`` ..
        ``acc_round_<iqr_rounds>``. No rows when no task is complete.

    Raises
    ------
    AnalysisError
        A completed task without a ``shown`` event, or an invalid spec setting.
    """
    included = _task_queryset(study, statuses)
    tasks = _tasks(included)
    if tasks.empty:
        return pd.DataFrame(columns=[*TASK_COLUMNS, "clutter", "size"])
    timings = _timings(study, tasks)
    truth = _truth(study, tasks["category"])
    metrics = _judgement_metrics(tasks, _judgements(study, tasks), truth)
    metrics["T"] = _durations(tasks, timings)
    # rounds used: refines asked for, or the highest round shown if more (seed 000: 2 rounds)
    metrics["rounds_used"] = np.fmax(
        timings["refines"].fillna(0), timings["top_round"].fillna(0)
    ).astype(np.int64)
    table = tasks.join(metrics, on="task").join(_accuracy(study, tasks, truth), on="task")
    table = table.join(_statistics(study, tasks), on="query_class")
    table["study"] = study.slug
    table["worker"] = table["source"] + ":" + table["external_id"]
    if pseudonymise_workers:
        table["worker"] = pseudonymise(table["worker"], salt=study_salt(study=study))
    table["is_xai"] = table["method"].astype(bool)
    for name in ("assignment", "task_pair", "query_image"):
        table[name] = table[name].astype(str)
    extra = [c for c in ("judgement_events", "superclass", "clutter", "size") if c in table.columns]
    accuracy = sorted((c for c in table.columns if c.startswith("acc_round_")),
                      key=lambda c: int(c.rsplit("_", 1)[1]))  # fmt: skip
    return table[[*TASK_COLUMNS, *extra, *accuracy]].reset_index(drop=True)
