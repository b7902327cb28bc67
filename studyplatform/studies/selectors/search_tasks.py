"""Reads of a worker's search tasks: the task a request names, the refines left."""

from __future__ import annotations

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
