"""The per-task and Likert tables read from a study's rows, checked against hand computations.

``build_study`` makes a tiny archive (fork in images 2-4 and 9, oven in 5-9) and a study of
two task pairs (fork then oven, the conditions swapped); ``play`` writes one HIT's events with
chosen server times. The expected nP, nA, T and accuracies are counted by hand from them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analysis.exports import pseudonymise
from analysis.frame import TASK_COLUMNS, validate_tasks
from analysis.metrics import task_metrics
from analysis.selectors import study_likert_table, study_salt, study_task_table
from retrieval.models import Annotation, Archive, Category, FeatureSet, Image, ImageDirectory
from studyplatform.studies.models import (
    Assignment,
    Condition,
    Event,
    IQRRound,
    Participant,
    QueryImage,
    Question,
    Questionnaire,
    Response,
    SearchTask,
    Study,
    TaskPair,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
FORK = {2, 3, 4, 9}
OVEN = {5, 6, 7, 8, 9}


def build_archive():
    archive = Archive.objects.create(name="tiny")
    folder = ImageDirectory.objects.create(archive=archive, path="/nowhere")
    fork = Category.objects.create(archive=archive, coco_id=1, name="fork", clutter=3.0, size=0.05)
    oven = Category.objects.create(archive=archive, coco_id=2, name="oven", clutter=2.0, size=0.3)
    images = {
        n: Image.objects.create(
            archive=archive, directory=folder, coco_id=n, file_name=f"{n}.jpg", width=8, height=8
        )
        for n in range(1, 11)
    }
    members = [(fork, {1} | FORK), (oven, OVEN)]
    number = 0
    for category, image_numbers in members:
        for n in sorted(image_numbers):
            number += 1
            Annotation.objects.create(
                archive=archive, image=images[n], category=category, coco_id=number,
                bbox_x=0, bbox_y=0, bbox_w=1, bbox_h=1, area=1,
            )  # fmt: skip
    feature_set = FeatureSet.objects.create(
        archive=archive, backbone_config={"name": "x"}, config_key="k", path="x.npy"
    )
    return archive, feature_set, images, fork, oven


def build_study(*, spec=None, superclasses=None):
    archive, feature_set, images, fork, oven = build_archive()
    study = Study.objects.create(
        slug="tiny", title="t", archive=archive, feature_set=feature_set, target_count=12,
        iqr_rounds=2, results_per_round=4, candidate_pool_size=8, spec=spec or {},
        superclasses=superclasses or {},
    )  # fmt: skip
    plain = Condition.objects.create(study=study, name="no-xai")
    xai = Condition.objects.create(study=study, name="sbsm", method="sbsm")
    q_fork = QueryImage.objects.create(study=study, image=images[1], category=fork)
    q_oven = QueryImage.objects.create(study=study, image=images[5], category=oven)
    TaskPair.objects.create(
        study=study, number=1, query_a=q_fork, condition_a=plain, query_b=q_oven, condition_b=xai
    )
    TaskPair.objects.create(
        study=study, number=2, query_a=q_fork, condition_a=xai, query_b=q_oven, condition_b=plain
    )
    return study, images


def add_assignment(study, worker: str, *, status: str = "submitted", pair: int = 1) -> Assignment:
    participant = Participant.objects.create(source="mturk", external_id=worker)
    pair = study.task_pairs.get(number=pair)
    assignment = Assignment.objects.create(
        study=study, participant=participant, task_pair=pair, order="ab", status=status
    )
    for position, (query, condition) in enumerate(
        [(pair.query_a, pair.condition_a), (pair.query_b, pair.condition_b)], start=1
    ):
        SearchTask.objects.create(
            assignment=assignment, position=position, query=query, condition=condition
        )
    return assignment


def event(task, kind, seconds, *, image=None, round_=None):
    row = Event.objects.create(
        assignment=task.assignment, task=task, type=kind, image_id=image, iqr_round=round_,
        client_event_id=f"e{Event.objects.count()}",
    )  # fmt: skip
    Event.objects.filter(pk=row.pk).update(server_time=T0 + timedelta(seconds=seconds))


def play(assignment, images, *, end_first: bool = True) -> None:
    """Task 1 (fork) and task 2 (oven) with the judgements commented below."""
    first, second = assignment.tasks.order_by("position")
    ids = {n: images[n].pk for n in images}
    # shown: 4 unjudged pool images; top_ranking: the head of the ranking the round produced
    IQRRound.objects.create(
        task=first, number=0, ranking=[ids[n] for n in (2, 5, 3, 10)],
        top_ranking=[ids[n] for n in (2, 5, 3, 10, 4, 6)],
    )  # fmt: skip
    IQRRound.objects.create(
        task=first, number=1, ranking=[ids[n] for n in (9, 4, 6, 7)],
        top_ranking=[ids[n] for n in (9, 4, 2, 3, 6, 7, 1)],
    )  # fmt: skip
    event(first, "shown", 0, round_=0)
    event(first, "marked_relevant", 5, image=ids[2])
    event(first, "marked_relevant", 8, image=ids[5])  # an oven: claimed, not a positive
    event(first, "marked_not_relevant", 10, image=ids[3])
    event(first, "marked_relevant", 12, image=ids[3])  # change of mind: last one wins
    event(first, "refine", 15, round_=1)
    event(first, "shown", 16, round_=1)
    event(first, "marked_relevant", 20, image=ids[9])
    event(first, "marked_relevant", 22, image=ids[6])
    event(first, "unmarked", 24, image=ids[6])  # withdrawn
    event(first, "marked_not_relevant", 26, image=ids[7])
    if end_first:
        event(first, "task_end", 30)
        SearchTask.objects.filter(pk=first.pk).update(ended_at=T0 + timedelta(seconds=30))
    IQRRound.objects.create(
        task=second, number=0, ranking=[ids[n] for n in (6, 7, 1, 9)],
        top_ranking=[ids[n] for n in (6, 7, 1, 9, 5)],
    )  # fmt: skip
    event(second, "shown", 100, round_=0)
    event(second, "marked_relevant", 110, image=ids[6])
    event(second, "marked_relevant", 115, image=ids[1])
    event(second, "task_end", 170)  # ended_at (160) takes precedence over the event
    SearchTask.objects.filter(pk=second.pk).update(ended_at=T0 + timedelta(seconds=160))


@pytest.fixture
def tiny(db):
    study, images = build_study()
    assignment = add_assignment(study, "W1")
    play(assignment, images)
    return study, images, assignment


def test_metrics_of_each_task_equal_the_hand_count(tiny):
    study, _, _ = tiny
    table = study_task_table(study=study)
    assert list(table.columns[: len(TASK_COLUMNS)]) == list(TASK_COLUMNS)
    first, second = table.to_dict("records")
    assert (first["condition"], first["is_xai"], first["query_class"]) == ("no-xai", False, "fork")
    assert (first["nP"], first["claimed_positives"], first["precision"]) == (3, 4, 0.75)
    # nA: images adjudicated at the end (2, 5, 3, 9, 7; 6 withdrawn); 7 judgement events
    assert (first["nA"], first["T"], first["rounds_used"]) == (5, 30.0, 1)
    assert first["judgement_events"] == 7
    # seed 000 Eq. 5, N = 50: forks 2, 3, 4 in round 0's top; 9, 4, 2, 3 and the query's
    # twin 1 in round 1's, judged images included
    assert (first["acc_round_0"], first["acc_round_1"]) == (3 / 50, 5 / 50)
    assert math.isnan(first["acc_round_2"])
    assert (second["condition"], second["is_xai"], second["query_class"]) == ("sbsm", True, "oven")
    assert (second["nP"], second["claimed_positives"], second["precision"]) == (1, 2, 0.5)
    assert (second["nA"], second["T"], second["rounds_used"]) == (2, 60.0, 0)
    assert second["acc_round_0"] == 4 / 50  # ovens 6, 7, 9, 5
    validate_tasks(table, conditions={"no-xai": False, "sbsm": True})


def test_a_round_stored_without_its_top_50_has_no_accuracy_rather_than_a_wrong_one(tiny):
    study, _, assignment = tiny
    IQRRound.objects.filter(task__assignment=assignment, number=1).update(top_ranking=[])
    first = study_task_table(study=study).set_index("position").loc[1]
    assert first["acc_round_0"] == 3 / 50
    assert math.isnan(first["acc_round_1"])


def test_the_table_agrees_with_the_per_task_metrics_of_the_numeric_core(tiny):
    study, _, assignment = tiny
    table = study_task_table(study=study).set_index("position")
    truth = {}
    for image_id, name in Annotation.objects.values_list("image_id", "category__name"):
        truth.setdefault(image_id, set()).add(name)
    for task in assignment.tasks.select_related("query__category"):
        events = [
            {"type": e.type, "image": e.image_id, "time": e.server_time, "iqr_round": e.iqr_round}
            for e in task.events.order_by("id")
        ]
        expected = task_metrics(events, truth, task.query.category.name)
        row = table.loc[task.position]
        assert (row["nP"], row["nA"], row["claimed_positives"], row["judgement_events"]) == (
            expected.nP, expected.nA, expected.claimed_positives, expected.judgement_events,
        )  # fmt: skip
        assert row["rounds_used"] == expected.rounds_used


def test_only_ended_tasks_of_submitted_or_approved_hits_are_data(tiny):
    study, images, _ = tiny
    play(add_assignment(study, "W2", status="returned"), images)
    play(add_assignment(study, "W3", status="active"), images, end_first=False)
    assert len(study_task_table(study=study)) == 2
    with_active = study_task_table(study=study, statuses=["submitted", "active"])
    # W3's first task never ended; its second one did.
    assert len(with_active) == 3


def test_workers_are_pseudonymised_with_the_study_salt(tiny, settings):
    study, _, _ = tiny
    table = study_task_table(study=study)
    expected = pseudonymise(table["worker"].map(lambda _: "mturk:W1"), salt=study_salt(study=study))
    assert list(table["worker"]) == list(expected)
    assert not table["worker"].str.contains("W1").any()
    assert (
        list(study_task_table(study=study, pseudonymise_workers=False)["worker"])
        == ["mturk:W1"] * 2
    )
    first = study_salt(study=study)
    settings.SECRET_KEY = "another-secret-key-of-enough-length-for-django-0123456789"
    assert study_salt(study=study) != first


def test_superclasses_follow_the_top_half_rule_or_the_study_override(tiny, db):
    study, _, _ = tiny
    table = study_task_table(study=study)
    assert dict(zip(table["query_class"], table["superclass"], strict=True)) == {
        "fork": "CS",
        "oven": "UL",
    }
    assert list(table["clutter"]) == [3.0, 2.0]
    study.superclasses = {"cluttered": ["oven"], "large": ["oven"]}
    study.save()
    table = study_task_table(study=study)
    assert dict(zip(table["query_class"], table["superclass"], strict=True)) == {
        "fork": "US",
        "oven": "CL",
    }


def test_the_number_of_queries_does_not_grow_with_the_number_of_hits(tiny):
    study, images, _ = tiny
    with CaptureQueriesContext(connection) as one:
        study_task_table(study=study)
    for n in range(2, 6):
        play(add_assignment(study, f"W{n}"), images)
    with CaptureQueriesContext(connection) as five:
        table = study_task_table(study=study)
    assert len(table) == 10
    assert len(five.captured_queries) == len(one.captured_queries) <= 8


def test_a_study_without_completed_tasks_gives_an_empty_table(db):
    study, _ = build_study()
    add_assignment(study, "W1")
    table = study_task_table(study=study)
    assert table.empty
    assert set(TASK_COLUMNS) <= set(table.columns)


def test_likert_answers_carry_their_tasks_and_final_answers_both(tiny):
    study, _, assignment = tiny
    sub = Questionnaire.objects.create(study=study, kind="subtask")
    easy = Question.objects.create(questionnaire=sub, code="easy", position=1, text="Easy.")
    final = Questionnaire.objects.create(study=study, kind="final")
    prefer = Question.objects.create(
        questionnaire=final, code="prefer", position=1, text="Maps.", scale="likert5"
    )
    note = Question.objects.create(
        questionnaire=final, code="note", position=2, text="?", scale="text"
    )
    first, second = assignment.tasks.order_by("position")
    Response.objects.create(assignment=assignment, question=easy, task=first, value=2)
    Response.objects.create(assignment=assignment, question=easy, task=second, value=6)
    Response.objects.create(assignment=assignment, question=prefer, value=4)
    Response.objects.create(assignment=assignment, question=note, text="fine")
    table = study_likert_table(study=study)
    rows = sorted(
        zip(table["question"], table["condition"], table["value"], table["points"], strict=True)
    )
    assert rows == [
        ("easy", "no-xai", 2, 6),
        ("easy", "sbsm", 6, 6),
        ("prefer", "no-xai", 4, 5),
        ("prefer", "sbsm", 4, 5),
    ]
    assert set(table["is_xai"]) == {True, False}
    assert np.all(table["worker"].str.startswith("w-"))


def played_study(*, workers: int, permutations: int):
    """A study played by ``workers`` workers alternating between pairs 1 and 2, each answering
    the final preference statement with 1, 2, ... (one higher per worker, capped at 6)."""
    study, images = build_study(spec={"analysis": {"permutations": permutations}})
    final = Questionnaire.objects.create(study=study, kind="final")
    prefer = Question.objects.create(
        questionnaire=final, code="prefer_with_xai", position=1, text="I prefer maps."
    )
    for n in range(workers):
        assignment = add_assignment(study, f"W{n}", pair=1 + n % 2)
        play(assignment, images)
        Response.objects.create(assignment=assignment, question=prefer, value=min(1 + n, 6))
    return study
