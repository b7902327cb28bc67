"""Reads of a worker's search tasks: the task a request names, the refines and time left,
the stopping rule."""

from __future__ import annotations

from django.utils import timezone

from ..errors import HitRefused
from ..models import Assignment, IQRRound, SearchTask


def search_task_of_assignment(*, assignment: Assignment, task_id: int) -> SearchTask:
    """The search task ``task_id`` of ``assignment``.

    Raises :class:`HitRefused` (403) when there is no such task or it is another
    assignment's: the worker learns nothing about other workers' tasks.
    """
    task = SearchTask.objects.filter(pk=task_id).select_related("assignment").first()
    if task is None or task.assignment_id != assignment.pk:
        raise HitRefused("that task is not one of this assignment's", status=403)
    return task


def rounds_left(*, task: SearchTask) -> int:
    """Refines the worker may still ask for in ``task`` (``study.iqr_rounds`` in all)."""
    used = IQRRound.objects.filter(task=task, number__gte=1).count()
    return max(task.assignment.study.iqr_rounds - used, 0)


def stops_at_target(study) -> bool:
    """Whether the study's tasks end at ``target_count`` relevant marks (spec ``stop``:
    ``at_target``) or go on until the worker finishes (``at_least``, seed 001)."""
    return (study.spec or {}).get("stop", "at_target") == "at_target"


def time_left_seconds(*, task: SearchTask) -> float | None:
    """Seconds left of the task's time limit (spec ``task_time_limit_minutes``) since it
    began; None without a limit or before the task began; 0 when spent."""
    limit = (task.assignment.study.spec or {}).get("task_time_limit_minutes")
    if limit is None or task.started_at is None:
        return None
    spent = (timezone.now() - task.started_at).total_seconds()
    return max(float(limit) * 60.0 - spent, 0.0)
