"""Assignments: psiTurk's emptiest-cell rule, resumption, refusals, idle and returned cells."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.utils import timezone

from studyplatform.studies.models import Assignment, Participant, SearchTask, TaskPair
from studyplatform.studies.selectors import study_progress
from studyplatform.studies.services.assignments import (
    AssignmentRefused,
    assignment_cell_choose,
    assignment_release_idle,
    assignment_return,
    assignment_start,
    assignment_touch,
    order_draw,
    pair_capacities,
)
from studyplatform.studies.services.studies import study_status_set
from tests.factories import plain_study

pytestmark = pytest.mark.django_db


def start(study, worker, **mturk):
    return assignment_start(study=study, source="mturk", external_id=worker, **mturk)


def test_the_rule_takes_the_emptiest_pair_its_emptier_order_and_skips_full_and_excluded_pairs():
    holders = {(1, "ab"): 1, (1, "ba"): 1, (2, "ab"): 1, (3, "ab"): 2, (3, "ba"): 1}

    assert assignment_cell_choose(pairs=[1, 2, 3], holders=holders, capacity=4) == (2, "ba")
    assert assignment_cell_choose(pairs=[1, 2, 3], holders=holders, capacity=4, excluded=[2]) == (
        1,
        "ba",
    )
    assert (
        assignment_cell_choose(pairs=[3], holders={(3, "ab"): 2, (3, "ba"): 1}, capacity=3) is None
    )
    # a pair's capacity counts both orders: 3 workers, two in one order and one in the other
    assert assignment_cell_choose(pairs=[3], holders={(3, "ab"): 2}, capacity=3) == (3, "ba")


def test_ties_go_to_the_emptier_pair_and_alternate_the_first_order_by_pair_number():
    assert assignment_cell_choose(pairs=[1, 2], holders={}, capacity=1) == (1, "ba")
    assert assignment_cell_choose(pairs=[2, 3], holders={}, capacity=1) == (2, "ab")
    assert assignment_cell_choose(pairs=[1, 2], holders={(1, "ba"): 1}, capacity=4) == (2, "ab")


def test_every_pair_reaches_its_repetitions_before_any_takes_an_extra_worker():
    capacity = pair_capacities(pairs=range(1, 149), repetitions=3, hits=476, seed=5)
    assert sum(capacity.values()) == 476
    assert sorted(set(capacity.values())) == [3, 4]
    assert sum(c == 4 for c in capacity.values()) == 32
    assert capacity == pair_capacities(pairs=range(1, 149), repetitions=3, hits=476, seed=5)
    holders = {(n, "ab"): 3 for n in range(1, 148)}  # pair 148 still short of 3
    chosen, _ = assignment_cell_choose(pairs=range(1, 149), holders=holders, capacity=capacity)
    assert chosen == 148
    with pytest.raises(ValueError, match="fewer than 3 repetitions x 148"):
        pair_capacities(pairs=range(1, 149), repetitions=3, hits=400)
    with pytest.raises(ValueError, match="raise repetitions"):
        pair_capacities(pairs=range(1, 149), repetitions=3, hits=700)


def test_random_orders_come_from_the_seed_and_are_a_fair_coin():
    draws = [order_draw(seed) for seed in range(2000)]
    assert draws == [order_draw(seed) for seed in range(2000)]
    assert 900 < draws.count("ab") < 1100
    assert assignment_cell_choose(pairs=[1], holders={}, capacity=3, order_seed=7) == (
        1, order_draw(7),
    )  # fmt: skip


def test_a_new_worker_gets_two_tasks_in_the_order_of_their_cell(demo_study):
    assignment = start(demo_study, "W1", mturk_assignment_id="A1", hit_id="H1")
    tasks = list(SearchTask.objects.filter(assignment=assignment).order_by("position"))
    pair = assignment.task_pair
    expected = [(pair.query_a_id, pair.condition_a_id), (pair.query_b_id, pair.condition_b_id)]
    if assignment.order == "ba":
        expected.reverse()

    assert assignment.status == "active"
    assert (assignment.mturk_assignment_id, assignment.hit_id) == ("A1", "H1")
    assert [(t.query_id, t.condition_id) for t in tasks] == expected
    assert [t.position for t in tasks] == [1, 2]


def test_a_returning_worker_resumes_their_own_assignment(demo_study):
    first = start(demo_study, "W1", mturk_assignment_id="A1")

    again = start(demo_study, "W1", mturk_assignment_id="A1")

    assert again.pk == first.pk
    assert Assignment.objects.count() == 1
    assert SearchTask.objects.count() == 2


def test_a_worker_who_submitted_is_refused_a_second_hit(demo_study):
    first = start(demo_study, "W1")
    Assignment.objects.filter(pk=first.pk).update(status="submitted")

    with pytest.raises(AssignmentRefused) as refused:
        start(demo_study, "W1", mturk_assignment_id="A2")

    assert refused.value.reason == "already_done"
    assert Assignment.objects.count() == 1


def test_a_study_that_is_not_live_refuses_new_workers_but_resumes_active_ones(demo_study):
    first = start(demo_study, "W1")
    study_status_set(study=demo_study, status="closed")

    with pytest.raises(AssignmentRefused) as refused:
        start(demo_study, "W2")

    assert refused.value.reason == "not_live"
    assert start(demo_study, "W1").pk == first.pk
    assert not Participant.objects.filter(external_id="W2", assignments__isnull=False).exists()


def test_every_pair_fills_to_its_repetitions_then_workers_are_refused(demo_study):
    places = TaskPair.objects.filter(study=demo_study).count() * demo_study.repetitions
    for i in range(places):
        start(demo_study, f"W{i}")

    with pytest.raises(AssignmentRefused) as refused:
        start(demo_study, "late")

    assert refused.value.reason == "no_cell"
    per_pair = Counter(Assignment.objects.values_list("task_pair_id", flat=True))
    assert set(per_pair.values()) == {demo_study.repetitions}
    # balanced: the two orders of each pair as even as its repetitions allow
    cells = Counter(Assignment.objects.values_list("task_pair_id", "order"))
    assert all(abs(cells[(p, "ab")] - cells[(p, "ba")]) <= 1 for p in per_pair)


def test_an_idle_assignment_is_abandoned_and_its_cell_goes_to_the_next_worker():
    study = plain_study(classes=2, per_class=1, repetitions=2, count=1, timeout_minutes=30)
    first, second = start(study, "W1"), start(study, "W2")
    assert start(study, "W1").pk == first.pk
    with pytest.raises(AssignmentRefused):
        start(study, "W3")
    Assignment.objects.filter(pk=first.pk).update(
        last_seen_at=timezone.now() - dt.timedelta(minutes=31)
    )

    third = start(study, "W3")

    first.refresh_from_db()
    assert first.status == "abandoned"
    assert (third.task_pair_id, third.order) == (first.task_pair_id, first.order)
    assert second.status == "active"


def test_release_idle_counts_only_assignments_past_the_timeout(demo_study):
    old, recent = start(demo_study, "W1"), start(demo_study, "W2")
    now = timezone.now()
    Assignment.objects.filter(pk=old.pk).update(last_seen_at=now - dt.timedelta(minutes=31))
    Assignment.objects.filter(pk=recent.pk).update(last_seen_at=now - dt.timedelta(minutes=29))

    assert assignment_release_idle(study=demo_study, now=now) == 1
    assert assignment_release_idle(study=demo_study, now=now) == 0
    assert dict(Assignment.objects.values_list("participant__external_id", "status")) == {
        "W1": "abandoned",
        "W2": "active",
    }


def test_an_abandoned_worker_who_comes_back_resumes_when_the_cell_has_room(demo_study):
    first = start(demo_study, "W1", mturk_assignment_id="A1")
    Assignment.objects.filter(pk=first.pk).update(
        last_seen_at=timezone.now() - dt.timedelta(hours=2)
    )
    assignment_release_idle(study=demo_study)

    again = start(demo_study, "W1", mturk_assignment_id="A1")

    assert again.pk == first.pk
    assert again.status == "active"
    assert again.finished_at is None


def test_an_abandoned_worker_whose_cell_was_taken_gets_a_pair_of_unseen_classes():
    # 6 classes, one query each: the pairs touching W1's two classes are at most 3 of 6.
    study = plain_study(classes=6, per_class=1, repetitions=1, timeout_minutes=30)
    first = start(study, "W1")
    Assignment.objects.filter(pk=first.pk).update(
        last_seen_at=timezone.now() - dt.timedelta(minutes=31)
    )
    taker = start(study, "W2")
    assert (taker.task_pair_id, taker.order) == (first.task_pair_id, first.order)

    again = start(study, "W1")

    seen = {first.task_pair.query_a.category_id, first.task_pair.query_b.category_id}
    assert again.pk != first.pk
    assert {again.task_pair.query_a.category_id, again.task_pair.query_b.category_id}.isdisjoint(
        seen
    )


def test_a_returned_assignment_frees_its_cell_and_returning_twice_is_harmless(demo_study):
    first = start(demo_study, "W1", mturk_assignment_id="A1")

    returned = assignment_return(mturk_assignment_id="A1")
    again = assignment_return(mturk_assignment_id="A1")

    assert returned.status == again.status == "returned"
    progress = study_progress(study=demo_study)
    assert progress.by_status == {"returned": 1}
    assert all(cell.holders == 0 for cell in progress.cells)
    nxt = start(demo_study, "W2")
    assert (nxt.task_pair_id, nxt.order) == (first.task_pair_id, first.order)


def test_a_submitted_assignment_cannot_be_returned(demo_study):
    first = start(demo_study, "W1", mturk_assignment_id="A1")
    Assignment.objects.filter(pk=first.pk).update(status="submitted")

    with pytest.raises(ValueError, match="submitted"):
        assignment_return(mturk_assignment_id="A1")
    with pytest.raises(Assignment.DoesNotExist):
        assignment_return(mturk_assignment_id="nope")

    assert Assignment.objects.get(pk=first.pk).status == "submitted"


def test_a_returned_mturk_assignment_id_cannot_start_again(demo_study):
    start(demo_study, "W1", mturk_assignment_id="A1")
    assignment_return(mturk_assignment_id="A1")

    with pytest.raises(AssignmentRefused) as refused:
        start(demo_study, "W1", mturk_assignment_id="A1")

    assert refused.value.reason == "expired"
    fresh = start(demo_study, "W1", mturk_assignment_id="A2")
    assert fresh.mturk_assignment_id == "A2"


def test_another_workers_mturk_assignment_id_is_refused(demo_study):
    start(demo_study, "W1", mturk_assignment_id="A1")

    with pytest.raises(AssignmentRefused) as refused:
        start(demo_study, "W2", mturk_assignment_id="A1")

    assert refused.value.reason == "bad_request"
    assert Assignment.objects.count() == 1


@pytest.mark.parametrize(
    ("source", "external_id"), [("nowhere", "W1"), ("mturk", ""), ("lab", "x" * 65)]
)
def test_bad_participant_ids_are_refused_and_nothing_is_written(demo_study, source, external_id):
    with pytest.raises(AssignmentRefused) as refused:
        assignment_start(study=demo_study, source=source, external_id=external_id)

    assert refused.value.reason == "bad_request"
    assert not Participant.objects.exists()


def test_touch_moves_last_seen_only_while_active(demo_study):
    assignment = start(demo_study, "W1")
    Assignment.objects.filter(pk=assignment.pk).update(
        last_seen_at=timezone.now() - dt.timedelta(minutes=10)
    )

    assert assignment_touch(assignment=assignment) is True
    fresh = Assignment.objects.get(pk=assignment.pk).last_seen_at
    assert timezone.now() - fresh < dt.timedelta(minutes=1)
    Assignment.objects.filter(pk=assignment.pk).update(status="abandoned")
    assert assignment_touch(assignment=assignment) is False


def test_a_lab_participant_and_an_mturk_worker_with_the_same_id_are_different_people(
    demo_study,
):
    lab = assignment_start(study=demo_study, source="lab", external_id="P1")
    worker = assignment_start(study=demo_study, source="mturk", external_id="P1")

    assert lab.pk != worker.pk
    assert lab.participant_id != worker.participant_id


def test_an_active_assignment_is_never_rebound_to_another_mturk_assignment(demo_study):
    first = start(demo_study, "W1", mturk_assignment_id="A1", hit_id="H1")

    for other in ({"mturk_assignment_id": "A2"}, {"mturk_assignment_id": "A1", "hit_id": "H2"}):
        with pytest.raises(AssignmentRefused) as refused:
            start(demo_study, "W1", **other)
        assert refused.value.reason == "bound_elsewhere"

    first.refresh_from_db()
    assert (first.mturk_assignment_id, first.hit_id) == ("A1", "H1")
    assert Assignment.objects.count() == 1


def test_an_abandoned_assignment_is_not_resumed_under_another_mturk_assignment(demo_study):
    first = start(demo_study, "W1", mturk_assignment_id="A1")
    Assignment.objects.filter(pk=first.pk).update(
        last_seen_at=timezone.now() - dt.timedelta(hours=2)
    )

    fresh = start(demo_study, "W1", mturk_assignment_id="A2")

    first.refresh_from_db()
    assert fresh.pk != first.pk
    assert (first.status, first.mturk_assignment_id) == ("abandoned", "A1")
    assert fresh.mturk_assignment_id == "A2"
