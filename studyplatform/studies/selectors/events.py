"""Reads of a worker's events: what a task has shown, and the judgements its marks add up to.

Events the server records itself carry client event ids made by :func:`server_event_id`; the
services that record them and the reads that look for them (was the tutorial done?) share it.
"""

from __future__ import annotations

from ..models import Event, IQRRound, SearchTask

#: Event types that judge an image of a task (a judgement, or its withdrawal).
MARK_TYPES = frozenset(
    {Event.Type.MARKED_RELEVANT, Event.Type.MARKED_NOT_RELEVANT, Event.Type.UNMARKED}
)


def server_event_id(*parts: object) -> str:
    """The client event id of an event the server records itself (``srv:`` + parts)."""
    return "srv:" + ":".join(str(part) for part in parts)


def shown_image_ids(*, task: SearchTask) -> set[int]:
    """Image ids the task has shown so far: the union of its rounds' rankings."""
    shown: set[int] = set()
    for ranking in IQRRound.objects.filter(task=task).values_list("ranking", flat=True):
        shown.update(int(i) for i in ranking)
    return shown


def task_marks(*, task: SearchTask) -> dict[int, str]:
    """Current judgement of every judged image of ``task``: {image id: "relevant" |
    "not_relevant"}, replaying its mark events in the order the server stored them."""
    marks: dict[int, str] = {}
    events = Event.objects.filter(task=task, type__in=MARK_TYPES).order_by("id")
    for type_, image_id in events.values_list("type", "image_id"):
        if type_ == Event.Type.MARKED_RELEVANT:
            marks[image_id] = "relevant"
        elif type_ == Event.Type.MARKED_NOT_RELEVANT:
            marks[image_id] = "not_relevant"
        else:
            marks.pop(image_id, None)
    return marks


def task_found_count(*, task: SearchTask) -> int:
    """Images of ``task`` currently judged relevant."""
    return sum(1 for mark in task_marks(task=task).values() if mark == "relevant")
