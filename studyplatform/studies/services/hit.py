"""A worker's search task: begin (round 0), refine (IQR rounds), end.

Seed 001 section 4: given a query image of a class, find ``target_count`` more instances in the
archive; the worker marks results relevant or not relevant and may refine, which trains seed
000's HIK SVM on the marks (``retrieval.services.iqr``) and re-ranks. Round 0 is the top of
the query's candidate pool (``pools.candidate_pool``, its maps precomputed); a refine round is
prepared on the ``gpu`` queue over the whole archive or the pool (``rounds``). The server
decides every ranking; the IQR state lives in ``SearchTask.iqr_state``
so a session survives a restart, and each round is an ``IQRRound`` row, so reloading the page
shows the same round and a retried refine does not spend a second round.
"""

from __future__ import annotations

import time

from django.db import transaction
from django.utils import timezone

from retrieval.accuracy import ACCURACY_TOP_N
from retrieval.selectors.features import search
from retrieval.services.iqr import iqr_start

from ..errors import HitRefused
from ..models import Event, IQRRound, SearchTask
from ..selectors.events import server_event_id, task_marks
from ..selectors.hit_overlays import overlay_keys
from ..selectors.pools import candidate_pool
from ..selectors.search_tasks import rounds_left, stops_at_target, time_left_seconds
from .events import event_record


def _locked(task: SearchTask) -> SearchTask:
    """The task re-read under a row lock (PostgreSQL; SQLite serialises writers anyway)."""
    return (
        SearchTask.objects.select_for_update(of=("self",))
        .select_related("assignment__study__feature_set", "condition", "query__image")
        .get(pk=task.pk)
    )


def _check_turn(task: SearchTask) -> None:
    """Refuse a task whose turn has not come: task 2 waits for task 1 to end."""
    if task.assignment.status != task.assignment.Status.ACTIVE:
        raise HitRefused(f"this assignment is {task.assignment.status}", status=409)
    if task.position == 2:
        first = SearchTask.objects.filter(assignment=task.assignment_id, position=1).first()
        if first is not None and first.ended_at is None:
            raise HitRefused("task 2 cannot begin before task 1 has ended", status=409)


def record_shown(task: SearchTask, round_: IQRRound, *, extra: dict | None = None) -> None:
    """A server event for the results shown, naming those without an overlay (with-XAI);
    ``extra`` adds to its payload (what a refine round ran, ``rounds.round_summary``)."""
    payload: dict = {"ranking": round_.ranking, **(extra or {})}
    if task.condition.is_xai:
        keys = overlay_keys(task=task, image_ids=round_.ranking)
        payload["overlays_missing"] = [i for i in round_.ranking if not keys.get(i)]
    event_record(
        assignment=task.assignment,
        client_event_id=server_event_id("shown", task.pk, round_.number),
        type=Event.Type.SHOWN,
        task=task,
        iqr_round=round_.number,
        payload=payload,
        server=True,
    )


def search_task_begin(*, task: SearchTask) -> SearchTask:
    """Start ``task``: a new IQR session on its query and round 0, the top
    ``study.results_per_round`` images of the query's pool (nearest first under the study's
    distance). Idempotent: a task already begun is returned unchanged, its round 0 kept.

    Raises :class:`HitRefused` (409) for an inactive assignment or task 2 before task 1 ended.
    """
    with transaction.atomic():
        task = _locked(task)
        if task.started_at is not None:
            return task
        _check_turn(task)
        study = task.assignment.study
        started = time.perf_counter()
        pool = candidate_pool(study=study, query=task.query)
        state = iqr_start(feature_set=study.feature_set, query_image=task.query.image)
        # seed 000 Eq. 5 reads the top 50 of the initial search over the whole archive
        top = search(
            feature_set=study.feature_set,
            query_image=task.query.image,
            k=min(ACCURACY_TOP_N, max(study.feature_set.n_rows - 1, 1)),
            metric=study.distance,
        )
        round_ = IQRRound.objects.create(
            task=task,
            number=0,
            ranking=pool[: study.results_per_round],
            top_ranking=[image_id for image_id, _ in top],
            scope=study.search_scope,
            seconds=time.perf_counter() - started,
            requested_at=timezone.now(),
            ready_at=timezone.now(),
        )
        task.iqr_state = state
        task.started_at = timezone.now()
        task.save(update_fields=["iqr_state", "started_at"])
        record_shown(task, round_)
    return task


def task_end_if_time_up(*, task: SearchTask) -> bool:
    """End a running task whose time limit is spent (reason ``time_up``); returns whether
    the task is now over for that reason. Idempotent."""
    left = time_left_seconds(task=task)
    if left is None or left > 0:
        return False
    search_task_end(task=task, reason=SearchTask.EndReason.TIME_UP)
    return True


def search_task_refine(*, task: SearchTask, client_event_id: str) -> SearchTask:
    """Ask for the next IQR round on the worker's current marks (``rounds.search_round_request``:
    the round is prepared on the ``gpu`` queue and shown when ready). Idempotent per
    ``client_event_id``; a refine while a round is being prepared is that round.

    Raises :class:`HitRefused`: the task has not begun or has ended (409), no rounds are left
    (409), or the id was used for another event (409).
    """
    from .rounds import search_round_request

    search_round_request(task=task, client_event_id=client_event_id)
    task.refresh_from_db()
    return task


def search_task_finish(*, task: SearchTask) -> SearchTask:
    """The worker's "finish this task": under ``stop: at_least`` whenever they choose
    (``finished``), under ``at_target`` once every refine is spent (``rounds_spent``)."""
    study = task.assignment.study
    reason = (
        SearchTask.EndReason.ROUNDS_SPENT
        if stops_at_target(study)
        else SearchTask.EndReason.FINISHED
    )
    return search_task_end(task=task, reason=reason)


def search_task_end(*, task: SearchTask, reason: str) -> SearchTask:
    """End ``task`` for ``reason`` (a ``SearchTask.EndReason``); idempotent (an ended task is
    returned as it is). ``rounds_spent`` is refused (409) while refines are left, ``finished``
    (by choice) on a study whose tasks stop at the target, and a task that has not begun
    cannot end (409)."""
    with transaction.atomic():
        task = _locked(task)
        if task.ended_at is not None:
            return task
        if task.started_at is None:
            raise HitRefused("this task has not begun", status=409)
        if reason not in SearchTask.EndReason.values:
            raise HitRefused(f"unknown end reason {reason!r}")
        if reason == SearchTask.EndReason.ROUNDS_SPENT and rounds_left(task=task):
            raise HitRefused("refine rounds are left; the task goes on", status=409)
        if reason == SearchTask.EndReason.FINISHED and stops_at_target(task.assignment.study):
            raise HitRefused("this study's tasks end at the target count", status=409)
        task.ended_at = timezone.now()
        task.end_reason = reason
        task.save(update_fields=["ended_at", "end_reason"])
        found = sum(1 for mark in task_marks(task=task).values() if mark == "relevant")
        event_record(
            assignment=task.assignment,
            client_event_id=server_event_id("task_end", task.pk),
            type=Event.Type.TASK_END,
            task=task,
            payload={"reason": reason, "found": found},
            server=True,
        )
    return task
