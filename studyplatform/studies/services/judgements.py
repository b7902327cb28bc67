"""A worker's judgement of a result: recorded once, and whether it reached the task's target.

Under the spec's ``stop: at_target`` a search task ends when the worker has found
``study.target_count`` relevant images; under ``stop: at_least`` (seed 001: "find at least
12") it goes on past the target until the worker finishes, so no judgement ends it. Recording
a judgement does not end the task; it says whether the target is reached (never under
``at_least``), and the caller ends the task explicitly (``hit.search_task_end`` with
``target_reached``), so every end of a task is a call someone can see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..errors import HitRefused
from ..models import Assignment, Event, SearchTask
from ..selectors.events import MARK_TYPES, task_found_count
from ..selectors.search_tasks import stops_at_target
from .events import event_record


@dataclass(frozen=True)
class Judgement:
    """The stored mark event, whether it was stored by this call (False for a resend), the
    task's relevant images after it, and whether they reach the study's target count."""

    event: Event
    created: bool
    found: int
    target_reached: bool


def judgement_record(
    *,
    assignment: Assignment,
    client_event_id: str,
    type: str,
    task: SearchTask | None,
    image_id: int | None,
    iqr_round: int | None = None,
    client_time: datetime | str | None = None,
    payload: dict | None = None,
) -> Judgement:
    """Store one mark event of ``task`` (``type`` one of ``events.MARK_TYPES``) through
    ``event_record``, with its checks and its once-only rule.

    ``target_reached`` is True once the task's relevant images number at least
    ``study.target_count`` in a study that stops at the target; a resend of the judgement that reached it says so again, so a
    caller whose first attempt failed after storing the mark still ends the task. Raises
    :class:`HitRefused` as ``event_record`` does (a judgement without ``task`` included), and
    (400) for a type that is not a mark.
    """
    if type not in MARK_TYPES:
        raise HitRefused(f"{type!r} is not a judgement")
    event, created = event_record(
        assignment=assignment,
        client_event_id=client_event_id,
        type=type,
        task=task,
        image_id=image_id,
        iqr_round=iqr_round,
        client_time=client_time,
        payload=payload,
    )
    found = task_found_count(task=task)
    reached = (
        type == Event.Type.MARKED_RELEVANT
        and found >= assignment.study.target_count
        and stops_at_target(assignment.study)
    )
    return Judgement(event=event, created=created, found=found, target_reached=reached)
