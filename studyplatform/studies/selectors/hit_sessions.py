"""Which assignment a browser holds: a worker is not a Django user, their session is bound to
one assignment per study (``session["hit_assignment:<study slug>"]``) when the HIT opens."""

from __future__ import annotations

from collections.abc import Mapping

from ..models import Assignment


def session_key(slug: str) -> str:
    """Session key of the assignment a browser holds in study ``slug`` (one per study, so HITs
    of two studies open side by side do not displace each other)."""
    return f"hit_assignment:{slug}"


def session_assignment(
    *, session: Mapping, study_slug: str, source: str | None = None
) -> Assignment | None:
    """The assignment of study ``study_slug`` this session is bound to (of participant
    ``source`` "mturk" or "lab" when given), or None when it holds none."""
    held = session.get(session_key(study_slug))
    if held is None:
        return None
    found = Assignment.objects.filter(pk=held, study__slug=study_slug).select_related("study")
    if source is not None:
        found = found.filter(participant__source=source)
    return found.first()
