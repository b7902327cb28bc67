"""Questionnaire answers and the final submit of a worker's HIT (seed 001 sections 4 and 5.3).

After each search task the worker answers the sub-task questionnaire of that task's condition
(``Questionnaire.for_xai`` None or equal to the condition's kind); after both, the final one.
Likert answers are integers 1..points (1 = strongly disagree); free text is stored as text, at
most :data:`TEXT_MAX_CHARS` characters, and only ever rendered escaped.
"""

from __future__ import annotations

import secrets

from django.db import transaction
from django.utils import timezone

from ..errors import HitRefused
from ..models import Assignment, Event, Question, Response, SearchTask
from ..selectors.events import server_event_id
from ..selectors.questionnaires import questions_for, questions_unanswered
from .events import event_record

TEXT_MAX_CHARS = 2000
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _clean(question: Question, raw) -> tuple[int | None, str]:
    """(value, text) of one raw answer; HitRefused naming the question when it is invalid."""
    if question.scale == Question.Scale.TEXT:
        text = "" if raw is None else raw
        if not isinstance(text, str):
            raise HitRefused(f"question {question.code}: the answer must be text")
        text = text.strip()
        if len(text) > TEXT_MAX_CHARS:
            raise HitRefused(
                f"question {question.code}: {len(text)} characters; at most {TEXT_MAX_CHARS}"
            )
        if not text and question.required:
            raise HitRefused(f"question {question.code} needs an answer")
        return None, text
    if raw in (None, ""):
        if question.required:
            raise HitRefused(f"question {question.code} needs an answer")
        return None, ""
    try:
        value = int(raw)
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON's Infinity
        raise HitRefused(f"question {question.code}: {raw!r} is not a point of the scale") from None
    if isinstance(raw, bool) or not 1 <= value <= question.points or str(value) != str(raw).strip():
        raise HitRefused(f"question {question.code}: answer must be 1 to {question.points}")
    return value, ""


def _check_stage(assignment: Assignment, task: SearchTask | None) -> None:
    if assignment.status != Assignment.Status.ACTIVE:
        raise HitRefused(f"this assignment is {assignment.status}", status=409)
    tasks = list(assignment.tasks.order_by("position"))
    if task is not None:
        if task.assignment_id != assignment.pk:
            raise HitRefused("that task belongs to another assignment", status=403)
        task = next(t for t in tasks if t.pk == task.pk)  # as stored now
        if task.ended_at is None:
            raise HitRefused(f"task {task.position} has not ended yet", status=409)
        return
    if any(t.ended_at is None for t in tasks):
        raise HitRefused("the final questionnaire comes after both tasks", status=409)
    for t in tasks:
        if questions_unanswered(assignment=assignment, task=t):
            raise HitRefused(f"the questionnaire after task {t.position} is not done", status=409)


def questionnaire_submit(
    *,
    assignment: Assignment,
    task: SearchTask | None,
    answers: dict,
    client_event_id: str,
) -> list[Response]:
    """Store the answers ({question code: value or text}) given after ``task`` (None: final).

    All or nothing: every answer is validated first (unknown codes, values off the scale,
    missing required answers, over-long text all raise :class:`HitRefused` naming the question)
    and nothing is written unless all pass. Answering again replaces the earlier answers.
    Records one ``questionnaire_answer`` event; the same ``client_event_id`` again is a no-op.
    """
    if not isinstance(answers, dict):
        raise HitRefused("answers must be an object of question code to answer")
    if Event.objects.filter(assignment=assignment, client_event_id=client_event_id).exists():
        event_record(
            assignment=assignment,
            client_event_id=client_event_id,
            type=Event.Type.QUESTIONNAIRE_ANSWER,
            task=task,
        )
        return list(Response.objects.filter(assignment=assignment, task=task))
    _check_stage(assignment, task)
    questions = {q.code: q for q in questions_for(assignment=assignment, task=task)}
    unknown = sorted(set(answers) - set(questions))
    if unknown:
        raise HitRefused(f"unknown question(s): {', '.join(map(str, unknown))[:200]}")
    cleaned = {code: _clean(q, answers.get(code)) for code, q in questions.items()}
    with transaction.atomic():
        saved = []
        for code, (value, text) in cleaned.items():
            if value is None and not text:
                continue
            response, _ = Response.objects.update_or_create(
                assignment=assignment,
                question=questions[code],
                task=task,
                defaults={"value": value, "text": text},
            )
            saved.append(response)
        event_record(
            assignment=assignment,
            client_event_id=client_event_id,
            type=Event.Type.QUESTIONNAIRE_ANSWER,
            task=task,
            payload={"questions": sorted(code for code, (v, t) in cleaned.items() if v or t)},
        )
    return saved


def assignment_submit(*, assignment: Assignment) -> Assignment:
    """Finish the HIT: both tasks ended and every required question answered, then status
    ``submitted`` (``finished_at`` set; lab participants get a ``completion_code``).

    Idempotent for an assignment already submitted. Raises :class:`HitRefused` (409) naming
    what is still to do, or when the assignment is no longer active; nothing changes then.
    """
    with transaction.atomic():
        assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
        if assignment.status == Assignment.Status.SUBMITTED:
            return assignment
        _check_stage(assignment, None)
        if questions_unanswered(assignment=assignment, task=None):
            raise HitRefused("the final questionnaire is not done", status=409)
        event_record(
            assignment=assignment,
            client_event_id=server_event_id("submit"),
            type=Event.Type.SUBMIT,
            server=True,
        )
        assignment.status = Assignment.Status.SUBMITTED
        assignment.finished_at = timezone.now()
        if assignment.participant.source == "lab" and not assignment.completion_code:
            assignment.completion_code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(10))
        assignment.save(update_fields=["status", "finished_at", "completion_code"])
    return assignment
