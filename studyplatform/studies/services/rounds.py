"""Refine rounds as seed 001 ran them: IQR over the whole archive on the ``gpu`` queue.

A refine on the HIT page (:func:`search_round_request`, web process) stores the worker's marks
in a ``pending`` :class:`IQRRound`, records the refine event and, after commit, hands the round
to the ``gpu`` queue (``studyplatform.studies.tasks.search_round_compute``). The gpu worker
(:func:`search_round_compute`) trains the HIK SVM on the marks and ranks, by the study's
``search_scope``:

* ``archive`` (seed 001): SMQTK's working set, the union of the 500 nearest archive images of
  each positive, growing as the worker finds positives (``search_working_set: neighbours``), or
  the whole archive through the HIK bucket codes (``all``);
* ``pool``: only the query's candidate pool, whose maps are all precomputed (bounded cost).

It then computes every missing saliency map of the results the worker will be shown (with-XAI
only; ``explain.services.saliency_maps_for_results``), and only then makes the round ``ready``
and records the ``shown`` event with what the round ran (scope, working-set size, seconds
queued and computing, maps computed on demand, whether it passed the study's budget). So a
with-XAI result is never shown without its map.

Latency budget (``study.round_budget_s``): the round waits for its exact maps whatever the
time; it is never finished with an approximation. A round past its budget is recorded as such
(``over_budget`` in the ``shown`` event), and the page, seeing a round pending longer than the
budget, tells the worker it is delayed and offers a retry (:func:`search_round_retry`), which
hands the same round to the queue again. The compute is idempotent (a ready round is never
recomputed; maps that exist are skipped) and, on PostgreSQL, held by an advisory lock for its
duration, so a round handed over twice is computed once, and a worker killed mid-round releases
the lock with its connection: the redelivered message (``acks_late``) computes it.

Without a broker (``CELERY_TASK_ALWAYS_EAGER``: the embedded default and ``make demo``) the task
runs in the web process right after the commit: the same code, no queue. The numeric and torch
imports happen inside :func:`search_round_compute` only, so a web process with a broker never
loads them for a refine.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

from celery import current_app
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from ..errors import HitRefused
from ..hooks import round_maps_compute
from ..models import Event, IQRRound, SearchTask, Study
from ..selectors.events import shown_image_ids, task_marks
from ..selectors.search_tasks import rounds_left, time_left_seconds
from .events import event_record

logger = logging.getLogger(__name__)

# Advisory-lock namespace of round computations (PostgreSQL's two-int form: namespace, round).
_LOCK_NAMESPACE = 0x5EA7
# SQLite (one process, the embedded default): a lock per round within the process is enough.
_LOCAL_LOCKS: dict[int, threading.Lock] = {}
_LOCAL_LOCKS_GUARD = threading.Lock()


def _locked_task(task: SearchTask) -> SearchTask:
    return (
        SearchTask.objects.select_for_update(of=("self",))
        .select_related("assignment__study", "condition", "query__image")
        .get(pk=task.pk)
    )


def round_pending(*, task: SearchTask) -> IQRRound | None:
    """The task's round being prepared (pending or delayed), or None."""
    return (
        IQRRound.objects.filter(task=task)
        .exclude(status=IQRRound.Status.READY)
        .order_by("-number")
        .first()
    )


def round_is_late(*, round_: IQRRound, study: Study) -> bool:
    """Whether the page should call the round delayed: it could not be queued, or it has
    waited longer than the study's budget."""
    if round_.status == IQRRound.Status.DELAYED:
        return True
    if round_.status != IQRRound.Status.PENDING or round_.requested_at is None:
        return False
    waited = (timezone.now() - round_.requested_at).total_seconds()
    return waited > study.round_budget_s


def search_round_request(*, task: SearchTask, client_event_id: str) -> IQRRound:
    """Ask for the next IQR round of ``task`` on the worker's current marks.

    Creates a ``pending`` round holding the marks (relevant = positives, not relevant =
    negatives, shown but withdrawn = unmarked), records the refine event, and hands the round
    to the ``gpu`` queue after commit. Idempotent: the same ``client_event_id`` returns the
    round it made; a refine while a round is being prepared returns that round (no second
    round, no second refine event).

    Raises :class:`HitRefused`: the task has not begun or has ended (409), no rounds are left
    (409), the id was used for another event (409).
    """
    from .hit import _check_turn

    with transaction.atomic():
        task = _locked_task(task)
        replay = Event.objects.filter(
            assignment=task.assignment_id, client_event_id=client_event_id
        ).first()
        if replay is not None:
            if replay.type != Event.Type.REFINE or replay.task_id != task.pk:
                raise HitRefused(
                    f"client_event_id {client_event_id!r} was already used for another event",
                    status=409,
                )
            return IQRRound.objects.get(task=task, number=replay.iqr_round)
        pending = round_pending(task=task)
        if pending is not None:
            return pending
        if task.started_at is None or task.ended_at is not None:
            raise HitRefused("refine needs a running task", status=409)
        _check_turn(task)
        if time_left_seconds(task=task) == 0:
            raise HitRefused("the task's time is up", status=409)
        if rounds_left(task=task) == 0:
            raise HitRefused("no refine rounds are left in this task", status=409)
        study = task.assignment.study
        marks = task_marks(task=task)
        positives = sorted(i for i, m in marks.items() if m == "relevant")
        negatives = sorted(i for i, m in marks.items() if m == "not_relevant")
        unmarked = sorted(shown_image_ids(task=task) - set(marks))
        number = IQRRound.objects.filter(task=task).count()
        round_ = IQRRound.objects.create(
            task=task,
            number=number,
            status=IQRRound.Status.PENDING,
            ranking=[],
            positives=positives,
            negatives=negatives,
            unmarked=unmarked,
            refine_event_id=client_event_id,
            scope=study.search_scope,
            requested_at=timezone.now(),
        )
        event_record(
            assignment=task.assignment,
            client_event_id=client_event_id,
            type=Event.Type.REFINE,
            task=task,
            iqr_round=number,
            payload={"positives": len(positives), "negatives": len(negatives)},
        )
        _hand_over(round_.pk)
    return round_


def search_round_retry(*, task: SearchTask) -> IQRRound:
    """Hand the task's round that is being prepared to the queue again (the page's retry).

    Harmless when a worker already has it: the compute is idempotent and computes a round
    once. Raises :class:`HitRefused` (409) when no round is being prepared.
    """
    with transaction.atomic():
        task = _locked_task(task)
        pending = round_pending(task=task)
        if pending is None:
            raise HitRefused("no round is being prepared", status=409)
        IQRRound.objects.filter(pk=pending.pk).update(status=IQRRound.Status.PENDING)
        _hand_over(pending.pk)
    pending.refresh_from_db()
    return pending


def _hand_over(round_id: int) -> None:
    """Enqueue the round once the caller's transaction commits (a gpu worker must find the
    row). Without a broker the round is computed here and now, in the caller's transaction:
    there is no other process to wait for, and a caller already inside a transaction (a test,
    a request under ``ATOMIC_REQUESTS``) would otherwise never see it computed."""
    if current_app.conf.task_always_eager:
        round_enqueue(round_id=round_id)
    else:
        transaction.on_commit(lambda: round_enqueue(round_id=round_id))


def round_enqueue(*, round_id: int) -> bool:
    """Send the round to the ``gpu`` queue (or, without a broker, compute it here).

    Never raises: when the broker cannot take the message, or the in-process computation
    fails, the round is marked ``delayed`` (its marks stay stored) and the page offers a retry.
    Returns whether the hand-over succeeded.
    """
    from ..tasks import search_round_compute as compute_task

    IQRRound.objects.filter(pk=round_id).update(attempts=F("attempts") + 1)
    try:
        # A short retry policy: a page waiting on a dead broker should learn it in seconds.
        compute_task.apply_async(
            (round_id,),
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )
    except Exception:
        logger.exception("round %s could not be handed to the gpu queue", round_id)
        IQRRound.objects.filter(pk=round_id, status=IQRRound.Status.PENDING).update(
            status=IQRRound.Status.DELAYED
        )
        return False
    return True


@contextmanager
def _round_lock(round_id: int):
    """Yields whether this process holds the round's computation (see the module docstring)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, round_id])
            held = cursor.fetchone()[0]
        try:
            yield held
        finally:
            if held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, round_id])
        return
    with _LOCAL_LOCKS_GUARD:
        lock = _LOCAL_LOCKS.setdefault(round_id, threading.Lock())
    held = lock.acquire(blocking=False)
    try:
        yield held
    finally:
        if held:
            lock.release()
            with _LOCAL_LOCKS_GUARD:
                _LOCAL_LOCKS.pop(round_id, None)


def _ranking(*, task: SearchTask, round_: IQRRound, device: str | None):
    """(image ids to show, the head of the ranking for seed 000 Eq. 5, new IQR state,
    working-set size) of ``round_``."""
    from retrieval.accuracy import ACCURACY_TOP_N
    from retrieval.services.iqr import iqr_refine

    from ..selectors.pools import candidate_pool

    study = task.assignment.study
    judged = set(round_.positives) | set(round_.negatives)
    pool_scope = round_.scope == Study.Scope.POOL
    result = iqr_refine(
        feature_set=study.feature_set,
        state=task.iqr_state,
        positives=round_.positives,
        negatives=round_.negatives,
        unmark=round_.unmarked,
        # The pool mode ranks the whole working set and keeps its pool images.
        # (at least the top 50, which seed 000 Eq. 5 reads).
        limit=None if pool_scope else max(study.results_per_round, ACCURACY_TOP_N),
        working_set=study.search_working_set,
        device=device,
    )
    ranking = [i for i in result.ranking if i not in judged]
    if pool_scope:
        pool = candidate_pool(study=study, query=task.query)
        in_pool = set(pool)
        ranking = [i for i in ranking if i in in_pool]
        chosen = set(ranking)
        ranking += [i for i in pool if i not in judged and i not in chosen]
    # SMQTK's IQR (seed 000's system) ranks the adjudicated positives first, at probability 1,
    # then the SVM's order: seed 000 Eq. 5 reads the top 50 of that, shown or not.
    top = (list(round_.positives) + list(result.ranking))[:ACCURACY_TOP_N]
    return ranking[: study.results_per_round], top, result.state, result.working_set_size


def search_round_compute(*, round_id: int, device: str | None = None) -> IQRRound:
    """Compute a pending round: rank, compute the missing maps, make it ready (gpu worker).

    Idempotent: a ready round is returned as it is; a round another process is computing is
    left to it (returned pending). ``device`` defaults to ``retrieval.services.iqr.iqr_device``
    (the GPU when the process has one, the archive then resident on it).
    """
    round_ = IQRRound.objects.select_related("task").get(pk=round_id)
    if round_.status == IQRRound.Status.READY:
        logger.info("round %s is ready already", round_id)
        return round_
    with _round_lock(round_id) as held:
        if not held:
            logger.info("round %s is being computed by another worker", round_id)
            return round_
        round_.refresh_from_db()
        if round_.status == IQRRound.Status.READY:
            logger.info("round %s is ready already", round_id)
            return round_
        logger.info("round %s: computing", round_id)
        started = time.perf_counter()
        started_at = timezone.now()
        task = SearchTask.objects.select_related(
            "assignment__study__feature_set", "condition", "query__image"
        ).get(pk=round_.task_id)
        study = task.assignment.study
        if device is None:
            from retrieval.services.iqr import iqr_device

            device = iqr_device()
        ranking, top, state, working_set_size = _ranking(task=task, round_=round_, device=device)
        on_demand: list[int] = []
        if task.condition.is_xai:
            # The maps come from the app that computes them (explain), through its hook.
            on_demand = round_maps_compute(
                study=study,
                condition=task.condition,
                query_image_id=task.query.image_id,
                result_image_ids=ranking,
            )
        seconds = time.perf_counter() - started
        return _round_finish(
            round_id=round_id,
            ranking=ranking,
            top_ranking=top,
            state=state,
            working_set_size=working_set_size,
            queued_seconds=max(0.0, (started_at - round_.requested_at).total_seconds())
            if round_.requested_at
            else 0.0,
            seconds=seconds,
            on_demand=on_demand,
        )


def _round_finish(
    *,
    round_id: int,
    ranking: list[int],
    top_ranking: list[int],
    state: dict,
    working_set_size: int,
    queued_seconds: float,
    seconds: float,
    on_demand: list[int],
) -> IQRRound:
    from .hit import record_shown

    with transaction.atomic():
        round_ = IQRRound.objects.select_for_update().get(pk=round_id)
        if round_.status == IQRRound.Status.READY:
            return round_
        task = _locked_task(round_.task)
        round_.ranking = ranking
        round_.top_ranking = top_ranking
        round_.working_set_size = working_set_size
        round_.queued_seconds = queued_seconds
        round_.seconds = seconds
        round_.maps_on_demand = len(on_demand)
        round_.status = IQRRound.Status.READY
        round_.ready_at = timezone.now()
        round_.save()
        logger.info(
            "round %s: ready (%s, working set %s, %.3f s queued, %.3f s computing, %s maps)",
            round_id,
            round_.scope,
            working_set_size,
            queued_seconds,
            seconds,
            len(on_demand),
        )
        task.iqr_state = state
        task.save(update_fields=["iqr_state"])
        summary = round_summary(round_=round_, study=task.assignment.study)
        record_shown(task, round_, extra={"round": summary, "maps_on_demand": on_demand})
    return round_


def round_summary(*, round_: IQRRound, study: Study) -> dict:
    """What a round ran, as recorded in its ``shown`` event and exported by the analysis:
    scope, working-set size, seconds queued and computing, maps computed on demand, the
    budget and whether the round passed it, hand-overs to the queue."""
    queued = round_.queued_seconds or 0.0
    return {
        "number": round_.number,
        "scope": round_.scope,
        "working_set_size": round_.working_set_size,
        "queued_seconds": round(queued, 4),
        "seconds": round(round_.seconds, 4),
        "maps_on_demand": round_.maps_on_demand,
        "budget_s": study.round_budget_s,
        "over_budget": queued + round_.seconds > study.round_budget_s,
        "attempts": round_.attempts,
    }


__all__ = [
    "round_enqueue",
    "round_is_late",
    "round_pending",
    "round_summary",
    "search_round_compute",
    "search_round_request",
    "search_round_retry",
]
