"""The tutorial of a worker's HIT: practice on images outside every pool, then the tasks."""

from __future__ import annotations

from ..models import Assignment, Event
from ..selectors.events import server_event_id
from .events import event_record


def tutorial_complete(*, assignment: Assignment) -> None:
    """Record that the worker finished the tutorial (one server ``page_view`` event; idempotent).

    Raises :class:`~studyplatform.studies.errors.HitRefused` (409) when the assignment is no
    longer active and the tutorial was not done before.
    """
    event_record(
        assignment=assignment,
        client_event_id=server_event_id("tutorial_done"),
        type=Event.Type.PAGE_VIEW,
        payload={"page": "tutorial", "done": True},
        server=True,
    )
