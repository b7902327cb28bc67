"""What a worker's page shows next, decided by the server from the stored rows.

The page renders :func:`assignment_state` and nothing else: the stage of the HIT (tutorial,
the intro of a task, the task itself, a questionnaire, the submit, done), and for a running
task its current round's unjudged results, the images judged relevant and not relevant, and
the refines left. Image ids only: the page builds the URLs of the assignment-scoped image view.
"""

from __future__ import annotations

from retrieval.models import Image

from ..models import Assignment, Event, IQRRound, Question, SearchTask
from ..services.rounds import round_is_late, round_pending
from .events import server_event_id, shown_image_ids, task_marks
from .hit_overlays import overlay_keys, study_colorbar
from .pools import candidate_pool
from .questionnaires import questions_for, questions_unanswered
from .search_tasks import rounds_left, stops_at_target, time_left_seconds

TUTORIAL_IMAGES = 4


def tutorial_image_ids(*, assignment: Assignment) -> list[int]:
    """Practice images: ``study.tutorial["image_ids"]`` when given, else the first
    :data:`TUTORIAL_IMAGES` archive images outside both of the assignment's query pools."""
    study = assignment.study
    given = (study.tutorial or {}).get("image_ids")
    if given:
        return [int(i) for i in given][:12]
    excluded: set[int] = set()
    for task in assignment.tasks.select_related("query__image"):
        excluded.add(task.query.image_id)
        excluded.update(candidate_pool(study=study, query=task.query))
    ids = Image.objects.filter(archive=study.archive_id).order_by("pk").values_list("pk", flat=True)
    chosen = []
    for image_id in ids.iterator():
        if image_id not in excluded:
            chosen.append(image_id)
            if len(chosen) == TUTORIAL_IMAGES:
                break
    return chosen


def tutorial_done(*, assignment: Assignment) -> bool:
    """Has the worker finished the tutorial (``tutorials.tutorial_complete``)?"""
    return Event.objects.filter(
        assignment=assignment, client_event_id=server_event_id("tutorial_done")
    ).exists()


def image_allowed(*, assignment: Assignment, image_id: int) -> bool:
    """May this assignment's worker see ``image_id``: a query of its tasks, an image one of its
    tasks has shown, or a practice image of its tutorial."""
    tasks = list(assignment.tasks.all())
    if any(t.query.image_id == image_id for t in tasks):
        return True
    if any(image_id in shown_image_ids(task=t) for t in tasks):
        return True
    return image_id in tutorial_image_ids(assignment=assignment)


def _question(q: Question) -> dict:
    return {
        "code": q.code,
        "text": q.text,
        "scale": q.scale,
        "points": q.points,
        "required": q.required,
    }


def task_view(*, task: SearchTask) -> dict:
    """The running task as the page draws it (seed 001 Figure 3)."""
    study = task.assignment.study
    marks = task_marks(task=task)
    rounds = IQRRound.objects.filter(task=task)
    current = rounds.filter(status=IQRRound.Status.READY).order_by("-number").first()
    # A refine round being prepared on the gpu queue: no results until it is ready, so a
    # with-XAI result is never drawn before its map exists.
    preparing = round_pending(task=task)
    ranking = [] if current is None else [i for i in current.ranking if i not in marks]
    if preparing is not None:
        ranking = []
    keys = overlay_keys(task=task, image_ids=ranking + list(marks))
    left = rounds_left(task=task) if task.started_at else study.iqr_rounds
    ended = task.ended_at is not None
    running = task.started_at is not None and not ended
    at_target = stops_at_target(study)

    def card(image_id: int) -> dict:
        return {"id": image_id, "overlay": bool(keys.get(image_id))}

    relevant = [i for i, m in marks.items() if m == "relevant"]
    return {
        "id": task.pk,
        "position": task.position,
        "label": task.query.category.name.replace("_", " "),
        "query": task.query.image_id,
        "xai": task.condition.is_xai,
        "target": study.target_count,
        "found": len(relevant),
        "round": 0 if current is None else current.number,
        "rounds_total": study.iqr_rounds,
        "rounds_left": left,
        "started": task.started_at is not None,
        "ended": ended,
        "end_reason": task.end_reason,
        "stop": "at_target" if at_target else "at_least",
        "time_left": time_left_seconds(task=task) if running else None,
        "colorbar": study_colorbar(study=study) if task.condition.is_xai else None,
        "can_refine": running and left > 0 and not preparing,
        # at_least (seed 001): the worker finishes when they choose; at_target: when the
        # refines are spent and the target was not reached
        "can_finish": running and (left == 0 or not at_target) and not preparing,
        "preparing": None
        if preparing is None
        else {
            "round": preparing.number,
            "delayed": round_is_late(round_=preparing, study=study),
            "budget_s": study.round_budget_s,
        },
        "results": [card(i) for i in ranking],
        "relevant": [card(i) for i in relevant],
        "not_relevant": [card(i) for i, m in marks.items() if m == "not_relevant"],
    }


def assignment_state(*, assignment: Assignment) -> dict:
    """The whole state the page renders: ``stage`` is one of tutorial, task_intro, task,
    questionnaire, final, submit, done, closed; ``task``/``questions`` as the stage needs."""
    assignment = Assignment.objects.select_related("study", "participant").get(pk=assignment.pk)
    study = assignment.study
    state: dict = {
        "assignment": assignment.pk,
        "status": assignment.status,
        "mode": assignment.participant.source,
        "study": {
            "title": study.title,
            "target": study.target_count,
            "rounds": study.iqr_rounds,
            "stop": "at_target" if stops_at_target(study) else "at_least",
            "colorbar": study_colorbar(study=study),
        },
        "task": None,
        "questions": [],
        "tasks": 2,
    }
    if assignment.status in (Assignment.Status.SUBMITTED, Assignment.Status.APPROVED):
        done = {"completion_code": assignment.completion_code}
        if assignment.participant.source == "mturk":
            done["submit_url"] = assignment.turk_submit_to.rstrip("/") + "/mturk/externalSubmit"
            done["assignment_id"] = assignment.mturk_assignment_id
        return {**state, "stage": "done", "done": done}
    if assignment.status != Assignment.Status.ACTIVE:
        return {**state, "stage": "closed"}
    if not tutorial_done(assignment=assignment):
        return {
            **state,
            "stage": "tutorial",
            "tutorial": {
                "label": (study.tutorial or {}).get("label", ""),
                "images": tutorial_image_ids(assignment=assignment),
            },
        }
    tasks = assignment.tasks.select_related("condition", "query__category", "query__image")
    for task in tasks.order_by("position"):
        if task.started_at is None or task.ended_at is None:
            stage = "task_intro" if task.started_at is None else "task"
            return {**state, "stage": stage, "task": task_view(task=task)}
        if questions_unanswered(assignment=assignment, task=task):
            questions = [_question(q) for q in questions_for(assignment=assignment, task=task)]
            return {
                **state,
                "stage": "questionnaire",
                "task": task_view(task=task),
                "questions": questions,
            }
    if questions_unanswered(assignment=assignment, task=None):
        questions = [_question(q) for q in questions_for(assignment=assignment, task=None)]
        return {**state, "stage": "final", "questions": questions}
    return {**state, "stage": "submit"}
