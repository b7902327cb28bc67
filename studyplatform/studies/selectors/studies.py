"""Reads of studies: progress of the assignments, per status, task pair and order."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from ..models import Assignment, Condition, Event, QueryImage, Response, Study, TaskPair

__all__ = [
    "CellProgress",
    "StudyProgress",
    "event_list",
    "response_list",
    "study_list",
    "study_progress",
    "task_pair_list",
]

_HOLDING = tuple(str(status) for status in Assignment.HOLDING_STATUSES)


@dataclass(frozen=True)
class CellProgress:
    """One (task pair, order) cell: ``holders`` = active + submitted + approved assignments."""

    pair_id: int
    pair_number: int
    order: str
    holders: int
    by_status: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyProgress:
    """How far a study is.

    Attributes
    ----------
    by_status : dict
        Assignments per status (statuses with none left out).
    cells : list of CellProgress
        Every (pair, order) cell, by pair number then order "ab", "ba".
    repetitions : int
        Distinct workers each pair needs, both orders together.
    capacities : dict
        Workers each pair takes, by pair number: ``repetitions``, one more on the pairs the
        spec's ``hits`` needs.
    """

    study_id: int
    repetitions: int
    by_status: dict[str, int]
    cells: list[CellProgress]
    capacities: dict[int, int] = field(default_factory=dict)

    @property
    def needed(self) -> int:
        """Holding assignments the study needs in all: the pairs' capacities summed."""
        return sum(self.capacities.values())

    @property
    def holding(self) -> int:
        return sum(cell.holders for cell in self.cells)

    @property
    def completed(self) -> int:
        """Submitted or approved assignments."""
        return self.by_status.get("submitted", 0) + self.by_status.get("approved", 0)

    @property
    def full_pairs(self) -> int:
        """Pairs holding as many workers as they take."""
        per_pair = self.per_pair
        return sum(
            sum(per_pair.get(number, {}).values()) >= capacity
            for number, capacity in self.capacities.items()
        )

    @property
    def per_pair(self) -> dict[int, dict[str, int]]:
        """``{pair number: {"ab": holders, "ba": holders}}``."""
        pairs: dict[int, dict[str, int]] = {}
        for cell in self.cells:
            pairs.setdefault(cell.pair_number, {})[cell.order] = cell.holders
        return pairs

    @property
    def per_order(self) -> dict[str, int]:
        """Holders per order over all pairs."""
        totals = Counter({"ab": 0, "ba": 0})
        for cell in self.cells:
            totals[cell.order] += cell.holders
        return dict(totals)

    @property
    def max_order_imbalance(self) -> int:
        """The largest ``|ab - ba|`` of holders within a pair (0 for a study without pairs)."""
        return max((abs(p["ab"] - p["ba"]) for p in self.per_pair.values()), default=0)

    def as_dict(self) -> dict:
        return {
            "study_id": self.study_id,
            "repetitions": self.repetitions,
            "needed": self.needed,
            "holding": self.holding,
            "completed": self.completed,
            "full_pairs": self.full_pairs,
            "by_status": dict(self.by_status),
            "per_order": self.per_order,
            "max_order_imbalance": self.max_order_imbalance,
            "cells": [
                {
                    "pair_id": c.pair_id,
                    "pair_number": c.pair_number,
                    "order": c.order,
                    "holders": c.holders,
                    "by_status": dict(c.by_status),
                }
                for c in self.cells
            ],
        }


def study_progress(*, study: Study) -> StudyProgress:
    """Assignments of ``study`` by status, and per (pair, order) cell; two queries."""
    counts = (
        Assignment.objects.filter(study=study)
        .values_list("task_pair_id", "order", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    per_cell: dict[tuple[int, str], dict[str, int]] = {}
    by_status: Counter = Counter()
    for pair_id, order, status, n in counts:
        per_cell.setdefault((pair_id, order), {})[status] = n
        by_status[status] += n
    cells = []
    for pair_id, number in (
        TaskPair.objects.filter(study=study).order_by("number").values_list("id", "number")
    ):
        for order in ("ab", "ba"):
            statuses = per_cell.get((pair_id, order), {})
            cells.append(
                CellProgress(
                    pair_id=pair_id,
                    pair_number=number,
                    order=order,
                    holders=sum(statuses.get(s, 0) for s in _HOLDING),
                    by_status=statuses,
                )
            )
    from ..services.assignments import study_pair_capacities

    return StudyProgress(
        study_id=study.pk,
        repetitions=study.repetitions,
        by_status=dict(by_status),
        cells=cells,
        capacities=study_pair_capacities(study=study),
    )


def _count_of(model) -> Coalesce:
    """Rows of ``model`` per study, as a subquery (no join fan-out across the four counts)."""
    rows = (
        model.objects.filter(study=OuterRef("pk"))
        .order_by()
        .values("study")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows), 0)


def study_visible_ids(*, user) -> QuerySet | None:
    """Ids of the studies ``user`` may see: those they own or collaborate on; ``None`` (no
    restriction) for a superuser."""
    if user.is_superuser:
        return None
    return (
        Study.objects.filter(Q(owner=user) | Q(collaborators=user))
        .values_list("id", flat=True)
        .distinct()
    )


def participant_label(*, external_id: str, user) -> str:
    """The participant's id as ``user`` may see it in an export: raw with the
    ``studies.view_worker_ids`` permission, otherwise a keyed pseudonym (``p-`` and 16 hex
    digits of an HMAC-SHA256 under SECRET_KEY), the same for the same worker across exports."""
    if user.has_perm("studies.view_worker_ids"):
        return external_id
    digest = hmac.new(settings.SECRET_KEY.encode(), external_id.encode(), hashlib.sha256)
    return "p-" + digest.hexdigest()[:16]


def study_list(*, user=None) -> QuerySet[Study]:
    """Studies, newest first, with ``n_conditions``, ``n_queries``, ``n_task_pairs`` and
    ``n_assignments`` annotated; with ``user``, only those they may see
    (:func:`study_visible_ids`)."""
    studies = Study.objects.all()
    visible = None if user is None else study_visible_ids(user=user)
    if visible is not None:
        studies = studies.filter(id__in=visible)
    return (
        studies.select_related("archive")
        .annotate(
            n_conditions=_count_of(Condition),
            n_queries=_count_of(QueryImage),
            n_task_pairs=_count_of(TaskPair),
            n_assignments=_count_of(Assignment),
        )
        .order_by("-created_at", "-id")
    )


def task_pair_list(*, study: Study) -> QuerySet[TaskPair]:
    """The study's task pairs by number, with their queries' classes and conditions."""
    return (
        TaskPair.objects.filter(study=study)
        .select_related("query_a__category", "query_b__category", "condition_a", "condition_b")
        .order_by("number")
    )


def event_list(
    *, study: Study, assignment_id: int | None = None, type: str | None = None
) -> QuerySet[Event]:
    """The study's events in server order, optionally of one assignment or one type, with the
    participant, task position and condition at hand."""
    events = Event.objects.filter(assignment__study=study).select_related(
        "assignment__participant", "task__condition"
    )
    if assignment_id is not None:
        events = events.filter(assignment_id=assignment_id)
    if type:
        events = events.filter(type=type)
    return events.order_by("server_time", "id")


def response_list(*, study: Study) -> QuerySet[Response]:
    """The study's questionnaire answers, by assignment, with question and task at hand."""
    return (
        Response.objects.filter(assignment__study=study)
        .select_related("assignment__participant", "question__questionnaire", "task__condition")
        .order_by("assignment_id", "id")
    )
