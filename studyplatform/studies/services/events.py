"""Events of a worker's HIT, each stored exactly once.

Every action in the worker's page is an event carrying a client event id; the page may send an
event several times (its queue retries after network failures), and the ``event_once``
constraint on (assignment, client event id) keeps one row. A second event under an id already
used for a *different* event is refused rather than silently merged. Events the server causes
(results shown, a task ended) use ids starting with ``srv:``, which clients may not use.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ..errors import HitRefused
from ..models import Assignment, Event, IQRRound, SearchTask
from ..selectors.events import MARK_TYPES, shown_image_ids
from .assignments import assignment_touch

#: Event types a worker's page may send through the event endpoint; the others are recorded
#: by the services that cause them (refine, task_end, questionnaire_answer, submit, shown).
CLIENT_TYPES = frozenset(
    {
        Event.Type.PAGE_VIEW,
        Event.Type.MARKED_RELEVANT,
        Event.Type.MARKED_NOT_RELEVANT,
        Event.Type.UNMARKED,
        Event.Type.VIEWED_PLAIN,
    }
)
#: Largest event payload, in bytes of compact JSON.
PAYLOAD_MAX_BYTES = 4096
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def _client_time(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        # parse_datetime raises ValueError for a well-formed but impossible date
        # (2026-02-30, an offset of +25:00); a year-1 time with a positive offset overflows
        # only when it is turned into UTC, so that is done here too.
        parsed = value if isinstance(value, datetime) else parse_datetime(str(value))
        if parsed is not None:
            if timezone.is_naive(parsed):
                parsed = timezone.make_aware(parsed, UTC)
            parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        parsed = None
    if parsed is None:
        raise HitRefused(f"client_time {value!r} is not a possible ISO 8601 date-time")
    return parsed


def _check_payload(payload: dict | None) -> dict:
    payload = {} if payload is None else payload
    if not isinstance(payload, dict):
        raise HitRefused("payload must be a JSON object")
    size = len(json.dumps(payload, separators=(",", ":")).encode())
    if size > PAYLOAD_MAX_BYTES:
        raise HitRefused(f"payload is {size} bytes; the limit is {PAYLOAD_MAX_BYTES}", status=413)
    return payload


def _same_event(event: Event, *, type: str, task_id, image_id, iqr_round) -> bool:
    return (event.type, event.task_id, event.image_id, event.iqr_round) == (
        type,
        task_id,
        image_id,
        iqr_round,
    )


def _check_mark(*, task: SearchTask, image_id: int | None, iqr_round: int | None) -> None:
    # Read afresh: the caller's instance may predate the task's begin or end.
    task = SearchTask.objects.only("position", "started_at", "ended_at").get(pk=task.pk)
    if task.started_at is None:
        raise HitRefused(f"task {task.position} has not begun", status=409)
    if task.ended_at is not None:
        raise HitRefused(f"task {task.position} has ended; its judgements are final", status=409)
    from .hit import task_end_if_time_up

    running = SearchTask.objects.select_related("assignment__study").get(pk=task.pk)
    if task_end_if_time_up(task=running):
        raise HitRefused(f"task {task.position}'s time is up; its judgements are final", status=409)
    if image_id is None:
        raise HitRefused("a judgement needs an image")
    if image_id not in shown_image_ids(task=task):
        raise HitRefused(f"image {image_id} was never shown in this task")
    if iqr_round is not None and not IQRRound.objects.filter(task=task, number=iqr_round).exists():
        raise HitRefused(f"round {iqr_round} has not been shown in this task")


def event_record(
    *,
    assignment: Assignment,
    client_event_id: str,
    type: str,
    task: SearchTask | None = None,
    image_id: int | None = None,
    iqr_round: int | None = None,
    client_time: datetime | str | None = None,
    payload: dict | None = None,
    server: bool = False,
) -> tuple[Event, bool]:
    """Store one event of ``assignment``, once; returns (the event, whether it was created now).

    The same ``client_event_id`` sent again with the same type, task, image and round returns
    the stored row (``created`` False) and changes nothing. Raises :class:`HitRefused` when the
    assignment is not active (409), the task is another assignment's (403), the id is
    malformed, reserved (``srv:`` unless ``server``) or already used for a different event
    (409), an event names an image its task never showed, a judgement's task is not running (409),
    or the payload exceeds :data:`PAYLOAD_MAX_BYTES` (413). Nothing is written when it raises.
    It never ends a task: ``judgements.judgement_record`` says when a judgement reached the
    target, and the caller ends the task (``hit.search_task_end``).
    """
    if not isinstance(client_event_id, str) or not _CLIENT_ID.match(client_event_id):
        raise HitRefused(
            "client_event_id must be 1-64 characters of letters, digits, '_', '-', '.', ':'"
        )
    if client_event_id.startswith("srv:") and not server:
        raise HitRefused("client_event_id may not start with 'srv:'")
    if type not in Event.Type.values:
        raise HitRefused(f"unknown event type {type!r}")
    if task is not None and task.assignment_id != assignment.pk:
        raise HitRefused("that task belongs to another assignment", status=403)
    image_id = None if image_id is None else int(image_id)
    task_id = None if task is None else task.pk
    existing = Event.objects.filter(assignment=assignment, client_event_id=client_event_id).first()
    if existing is not None:
        return _replayed(
            existing, type=type, task_id=task_id, image_id=image_id, iqr_round=iqr_round
        )
    if assignment.status != Assignment.Status.ACTIVE:
        raise HitRefused(f"this assignment is {assignment.status}, no longer active", status=409)
    if type in MARK_TYPES:
        if task is None:
            raise HitRefused("a judgement needs a task")
        _check_mark(task=task, image_id=image_id, iqr_round=iqr_round)
    elif image_id is not None and (task is None or image_id not in shown_image_ids(task=task)):
        raise HitRefused(f"image {image_id} was never shown in this task")
    payload = _check_payload(payload)
    parsed_time = _client_time(client_time)
    try:
        with transaction.atomic():
            event = Event.objects.create(
                assignment=assignment,
                client_event_id=client_event_id,
                type=type,
                task=task,
                image_id=image_id,
                iqr_round=iqr_round,
                client_time=parsed_time,
                payload=payload,
            )
    except IntegrityError:
        # A concurrent request stored the same id first (the page retried while the first
        # request was still running); it is the stored row or a conflict, never a second row.
        existing = Event.objects.filter(
            assignment=assignment, client_event_id=client_event_id
        ).first()
        if existing is None:
            raise  # another constraint failed: not a replay, nothing to return
        return _replayed(
            existing, type=type, task_id=task_id, image_id=image_id, iqr_round=iqr_round
        )
    assignment_touch(assignment=assignment)
    return event, True


def _replayed(existing: Event, **fields) -> tuple[Event, bool]:
    if not _same_event(existing, **fields):
        raise HitRefused(
            f"client_event_id {existing.client_event_id!r} was already used for another event",
            status=409,
        )
    return existing, False
