"""The worker's search task: round 0, refines (here in the pool-bound mode), idempotent, the end."""

from __future__ import annotations

import pytest

from studyplatform.studies.errors import HitRefused
from studyplatform.studies.models import Assignment, Event, IQRRound, Response
from studyplatform.studies.selectors.hit_state import assignment_state
from studyplatform.studies.selectors.pools import candidate_pool
from studyplatform.studies.services.events import event_record
from studyplatform.studies.services.hit import (
    search_task_begin,
    search_task_end,
    search_task_refine,
)
from studyplatform.studies.services.hit_responses import assignment_submit, questionnaire_submit
from studyplatform.studies.services.judgements import judgement_record
from studyplatform.studies.services.tutorials import tutorial_complete
from tests.studies.hit_helpers import build_assignment, build_study, hit_feature_set, refine_now

pytestmark = pytest.mark.django_db
__all__ = ["hit_feature_set"]


@pytest.fixture
def study(hit_feature_set):
    return build_study(hit_feature_set)


@pytest.fixture
def assignment(study):
    return build_assignment(study)


@pytest.fixture
def task(assignment):
    return assignment.tasks.get(position=1)


def judge(task, image_ids, kind="marked_not_relevant"):
    """Judge each image as the event endpoint does: record it, end the task at the target."""
    for image_id in image_ids:
        judgement = judgement_record(
            assignment=task.assignment,
            client_event_id=f"m-{kind}-{image_id}",
            type=kind,
            task=task,
            image_id=image_id,
        )
        if judgement.target_reached:
            search_task_end(task=task, reason="target_reached")


def test_round_zero_is_the_top_of_the_pool_and_a_reload_keeps_it(study, task):
    search_task_begin(task=task)
    again = search_task_begin(task=task)

    pool = candidate_pool(study=study, query=task.query)
    rounds = list(IQRRound.objects.filter(task=task))
    assert [r.number for r in rounds] == [0]
    assert rounds[0].ranking == pool[:6]
    assert again.started_at is not None
    assert again.iqr_state["feature_set"] == study.feature_set_id
    assert Event.objects.filter(task=task, type="shown").count() == 1


def test_a_pool_bound_refine_trains_on_the_marks_and_shows_unjudged_pool_images(study, task):
    study.search_scope = "pool"
    study.save()
    search_task_begin(task=task)
    first = IQRRound.objects.get(task=task, number=0).ranking
    judge(task, first[:1], "marked_relevant")
    judge(task, first[1:4])

    refine_now(task, "refine-1")

    second = IQRRound.objects.get(task=task, number=1)
    pool = set(candidate_pool(study=study, query=task.query))
    assert second.positives == first[:1]
    assert sorted(second.negatives) == sorted(first[1:4])
    assert len(second.ranking) == 6
    assert set(second.ranking) <= pool
    assert not set(second.ranking) & set(first[:4])
    assert task.query.image_id not in second.ranking


def test_a_retried_refine_does_not_spend_a_second_round(task):
    search_task_begin(task=task)

    refine_now(task, "refine-1")
    refine_now(task, "refine-1")

    assert IQRRound.objects.filter(task=task).count() == 2
    assert Event.objects.filter(task=task, type="refine").count() == 1


def test_refine_is_refused_once_the_rounds_are_spent_and_nothing_is_written(task):
    search_task_begin(task=task)
    refine_now(task, "refine-1")
    refine_now(task, "refine-2")

    with pytest.raises(HitRefused, match="no refine rounds are left") as refused:
        refine_now(task, "refine-3")

    assert refused.value.status == 409
    assert IQRRound.objects.filter(task=task).count() == 3
    assert not Event.objects.filter(client_event_id="refine-3").exists()


def test_a_refine_id_used_by_another_event_is_refused(task):
    search_task_begin(task=task)
    judge(task, IQRRound.objects.get(task=task).ranking[:1])

    with pytest.raises(HitRefused, match="already used"):
        search_task_refine(
            task=task,
            client_event_id="m-marked_not_relevant-"
            + str(IQRRound.objects.get(task=task).ranking[0]),
        )
    assert IQRRound.objects.filter(task=task).count() == 1


def test_the_task_ends_when_the_target_count_is_found_and_later_marks_are_refused(task):
    search_task_begin(task=task)
    shown = IQRRound.objects.get(task=task).ranking

    judge(task, shown[:3], "marked_relevant")

    task.refresh_from_db()
    assert task.ended_at is not None
    assert task.end_reason == "target_reached"
    with pytest.raises(HitRefused, match="has ended"):
        judge(task, shown[3:4])
    assert Event.objects.filter(task=task, type="task_end").count() == 1


def test_recording_judgements_never_ends_a_task_it_only_says_when_the_target_is_reached(task):
    search_task_begin(task=task)
    shown = IQRRound.objects.get(task=task).ranking

    plain = [
        event_record(
            assignment=task.assignment,
            client_event_id=f"plain-{image_id}",
            type="marked_relevant",
            task=task,
            image_id=image_id,
        )
        for image_id in shown[:3]
    ]
    task.refresh_from_db()
    unended = (task.ended_at, Event.objects.filter(task=task, type="task_end").count())
    withdrawn = judgement_record(
        assignment=task.assignment,
        client_event_id="undo-3",
        type="unmarked",
        task=task,
        image_id=shown[2],
    )
    judgements = [
        judgement_record(
            assignment=task.assignment,
            client_event_id=f"again-{image_id}",
            type="marked_relevant",
            task=task,
            image_id=image_id,
        )
        for image_id in (shown[2], shown[2])
    ]

    assert all(created for _, created in plain)
    assert unended == (None, 0)
    assert (withdrawn.found, withdrawn.target_reached) == (2, False)
    assert [(j.created, j.found, j.target_reached) for j in judgements] == [
        (True, 3, True),
        (False, 3, True),  # a resend says so again, so a retried request still ends the task
    ]
    task.refresh_from_db()
    assert task.ended_at is None
    with pytest.raises(HitRefused, match="is not a judgement"):
        judgement_record(
            assignment=task.assignment,
            client_event_id="pv",
            type="page_view",
            task=task,
            image_id=None,
        )


def test_finishing_is_refused_while_refines_are_left(task):
    search_task_begin(task=task)

    with pytest.raises(HitRefused, match="rounds are left"):
        search_task_end(task=task, reason="rounds_spent")
    refine_now(task, "r1")
    refine_now(task, "r2")
    ended = search_task_end(task=task, reason="rounds_spent")

    assert ended.end_reason == "rounds_spent"


def test_task_two_cannot_begin_before_task_one_ends(assignment):
    with pytest.raises(HitRefused, match="task 2 cannot begin") as refused:
        search_task_begin(task=assignment.tasks.get(position=2))

    assert refused.value.status == 409
    assert not IQRRound.objects.exists()


def finish_task(task):
    search_task_begin(task=task)
    judge(task, IQRRound.objects.get(task=task, number=0).ranking[:3], "marked_relevant")


def test_the_stages_follow_seed_001s_procedure_and_submit_waits_for_every_answer(assignment):
    stages = [assignment_state(assignment=assignment)["stage"]]
    tutorial_complete(assignment=assignment)
    stages.append(assignment_state(assignment=assignment)["stage"])
    first, second = assignment.tasks.order_by("position")
    finish_task(first)
    stages.append(assignment_state(assignment=assignment)["stage"])
    questionnaire_submit(
        assignment=assignment, task=first, answers={"easy": 5}, client_event_id="q1"
    )
    finish_task(second)
    state = assignment_state(assignment=assignment)
    stages.append(state["stage"])
    with pytest.raises(HitRefused, match="questionnaire after task 2"):
        assignment_submit(assignment=assignment)
    # the with-XAI task also gets the with-XAI questionnaire
    assert [q["code"] for q in state["questions"]] == ["easy", "maps-helped"]
    questionnaire_submit(
        assignment=assignment,
        task=second,
        answers={"easy": 2, "maps-helped": 6},
        client_event_id="q2",
    )
    stages.append(assignment_state(assignment=assignment)["stage"])
    questionnaire_submit(
        assignment=assignment, task=None, answers={"prefer-maps": 4}, client_event_id="q3"
    )
    stages.append(assignment_state(assignment=assignment)["stage"])

    submitted = assignment_submit(assignment=assignment)

    assert stages == ["tutorial", "task_intro", "questionnaire", "questionnaire", "final", "submit"]
    assert submitted.status == "submitted"
    assert submitted.completion_code == ""
    assert assignment_state(assignment=assignment)["done"]["assignment_id"] == "ASSIGN-WORKER1"
    assert assignment_submit(assignment=assignment).finished_at == submitted.finished_at


def test_a_lab_participant_gets_a_completion_code(study):
    assignment = build_assignment(study, worker="P-17", source="lab")
    tutorial_complete(assignment=assignment)
    for task, answers in zip(
        assignment.tasks.order_by("position"),
        ({"easy": 1}, {"easy": 1, "maps-helped": 1}),
        strict=True,
    ):
        finish_task(task)
        questionnaire_submit(
            assignment=assignment, task=task, answers=answers, client_event_id=f"q{task.pk}"
        )
    questionnaire_submit(
        assignment=assignment, task=None, answers={"prefer-maps": 1}, client_event_id="f"
    )

    done = assignment_submit(assignment=assignment)

    assert len(done.completion_code) == 10
    assert Assignment.objects.get(pk=assignment.pk).status == "submitted"


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"easy": 7}, "answer must be 1 to 6"),
        ({"easy": "3; DROP"}, "not a point of the scale"),
        ({"easy": True}, "answer must be 1 to 6"),
        ({}, "easy needs an answer"),
        ({"easy": 3, "bogus": 1}, "unknown question"),
    ],
)
def test_bad_answers_are_refused_and_nothing_is_stored(assignment, answers, message):
    first = assignment.tasks.get(position=1)
    tutorial_complete(assignment=assignment)
    finish_task(first)

    with pytest.raises(HitRefused, match=message):
        questionnaire_submit(
            assignment=assignment, task=first, answers=answers, client_event_id="q"
        )

    assert not Response.objects.exists()
    assert not Event.objects.filter(type="questionnaire_answer").exists()


def test_html_in_a_free_text_answer_is_stored_as_plain_text(assignment):
    tutorial_complete(assignment=assignment)
    for task, answers in zip(
        assignment.tasks.order_by("position"),
        ({"easy": 1}, {"easy": 1, "maps-helped": 1}),
        strict=True,
    ):
        finish_task(task)
        questionnaire_submit(
            assignment=assignment, task=task, answers=answers, client_event_id=f"q{task.pk}"
        )
    text = "<script>alert('x')</script> & <b>bold</b>"

    questionnaire_submit(
        assignment=assignment,
        task=None,
        answers={"prefer-maps": 3, "comments": text},
        client_event_id="final",
    )

    assert Response.objects.get(question__code="comments").text == text
    with pytest.raises(HitRefused, match="at most 2000"):
        questionnaire_submit(
            assignment=assignment,
            task=None,
            answers={"prefer-maps": 3, "comments": "x" * 2001},
            client_event_id="final-2",
        )
    assert Response.objects.get(question__code="comments").text == text
