"""Reads of the questionnaires a worker answers (seed 001 sections 4 and 5.3).

After each search task the worker answers the sub-task questionnaires of that task's condition
(``Questionnaire.for_xai`` None or equal to the condition's kind); after both, the final ones.
"""

from __future__ import annotations

from django.db.models import Q

from ..models import Assignment, Question, Questionnaire, Response, SearchTask


def questions_for(*, assignment: Assignment, task: SearchTask | None) -> list[Question]:
    """Questions to ask after ``task`` (its condition's sub-task questionnaires), or the final
    ones when ``task`` is None; in questionnaire then position order."""
    if task is None:
        found = Q(kind=Questionnaire.Kind.FINAL)
    else:
        found = Q(kind=Questionnaire.Kind.SUBTASK) & (
            Q(for_xai__isnull=True) | Q(for_xai=task.condition.is_xai)
        )
    return list(
        Question.objects.filter(questionnaire__study=assignment.study_id)
        .filter(Q(questionnaire__in=Questionnaire.objects.filter(found)))
        .select_related("questionnaire")
        .order_by("questionnaire_id", "position")
    )


def questions_unanswered(*, assignment: Assignment, task: SearchTask | None) -> list[Question]:
    """Required questions after ``task`` (or final ones) without a response yet."""
    answered = set(
        Response.objects.filter(assignment=assignment, task=task).values_list(
            "question_id", flat=True
        )
    )
    return [
        q
        for q in questions_for(assignment=assignment, task=task)
        if q.required and q.pk not in answered
    ]
