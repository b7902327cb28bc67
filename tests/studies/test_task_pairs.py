"""Task pairs: different classes in every pair, queries spread evenly over conditions, seeded."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studyplatform.studies.models import Assignment, Participant, TaskPair
from studyplatform.studies.services.task_pairs import (
    TaskPairError,
    task_pair_comparisons,
    task_pair_generate,
    task_pair_plan,
)
from tests.factories import plain_study


def pairs_of(study):
    return list(
        TaskPair.objects.filter(study=study)
        .order_by("number")
        .values_list("number", "query_a_id", "condition_a_id", "query_b_id", "condition_b_id")
    )


def least_slots(classes, k, count):
    """The fewest of ``count`` evenly spread slots a class can get: each query used
    floor(count / Q) times, and the remainder given to other classes' queries first."""
    q, m = len(classes), classes.count(k)
    base, extra = divmod(count, q)
    return m * base + max(0, extra - (q - m))


@settings(max_examples=300, deadline=None)
@given(
    classes=st.lists(st.integers(0, 6), min_size=2, max_size=30),
    n_conditions=st.integers(2, 4),
    count=st.integers(1, 40),
    seed=st.integers(0, 2**32),
    design=st.sampled_from(["control_vs_treatment", "all_pairs"]),
)
def test_planned_pairs_never_share_a_class_and_spread_queries_evenly(
    classes, n_conditions, count, seed, design
):
    if len(set(classes)) < 2:
        return
    comparisons = task_pair_comparisons(is_xai=[i > 0 for i in range(n_conditions)], design=design)
    error = None
    try:
        plan = task_pair_plan(
            query_classes=classes,
            n_conditions=n_conditions,
            comparisons=comparisons,
            count=count,
            seed=seed,
        )
    except TaskPairError as exc:
        error = str(exc)
    if error is not None:
        # Only when no arrangement with evenly used queries exists: some class k then has more
        # than `count` of the 2 * count slots of a comparison in every such arrangement.
        assert "fills" in error
        if len(comparisons) == 1:
            assert any(2 * least_slots(classes, k, count) > count for k in set(classes))
        return

    assert len(plan) == count * len(comparisons)
    assert all(classes[qa] != classes[qb] for qa, _, qb, _ in plan)
    assert Counter((ca, cb) for _, ca, _, cb in plan) == dict.fromkeys(comparisons, count)
    for condition in range(n_conditions):
        uses = Counter()
        for qa, ca, qb, cb in plan:
            uses[qa] += ca == condition
            uses[qb] += cb == condition
        spread = [uses[q] for q in range(len(classes))]
        assert max(spread) - min(spread) <= 1
    assert plan == task_pair_plan(
        query_classes=classes,
        n_conditions=n_conditions,
        comparisons=comparisons,
        count=count,
        seed=seed,
    )


def test_a_class_in_more_than_half_of_the_slots_is_named_in_the_error():
    with pytest.raises(TaskPairError, match="class 'cake' fills 6 of the 8 slots"):
        task_pair_plan(
            query_classes=["cake", "cake", "cake", "fork"],
            n_conditions=2,
            comparisons=[(0, 1)],
            count=4,
            seed=0,
        )
    # With 2 pairs the same queries can be paired: cake/fork and fork/cake.
    plan = task_pair_plan(
        query_classes=["cake", "cake", "cake", "fork"],
        n_conditions=2,
        comparisons=[(0, 1)],
        count=2,
        seed=0,
    )
    assert sorted((qa == 3, qb == 3) for qa, _, qb, _ in plan) == [(False, True), (True, False)]


def test_control_vs_treatment_needs_exactly_one_no_xai_condition():
    assert task_pair_comparisons(is_xai=[False, True, True], design="control_vs_treatment") == [
        (0, 1),
        (0, 2),
    ]
    assert task_pair_comparisons(is_xai=[True, False], design="control_vs_treatment") == [(0, 1)]
    with pytest.raises(TaskPairError, match="exactly one no-XAI"):
        task_pair_comparisons(is_xai=[True, True], design="control_vs_treatment")
    assert task_pair_comparisons(is_xai=[True, True, True], design="all_pairs") == [
        (0, 1),
        (0, 2),
        (1, 2),
    ]


def test_seed_001_sizes_use_every_query_and_none_twice_in_a_condition():
    # 24 classes, 160 queries (16 classes with 7, 8 with 6), 148 pairs (seed 001 section 4).
    classes = [c for c in range(24) for _ in range(7 if c < 16 else 6)]
    plan = task_pair_plan(
        query_classes=classes, n_conditions=2, comparisons=[(0, 1)], count=148, seed=2021
    )

    no_xai = Counter(qa for qa, _, _, _ in plan)
    xai = Counter(qb for _, _, qb, _ in plan)
    assert len(plan) == 148
    assert max(no_xai.values()) == max(xai.values()) == 1
    assert len(no_xai) == len(xai) == 148
    assert set(no_xai) | set(xai) == set(range(160))


@pytest.mark.django_db
def test_generation_is_seeded_and_a_second_run_writes_nothing():
    study = plain_study(classes=4, per_class=3, seed=5)
    first = pairs_of(study)
    ids = list(TaskPair.objects.filter(study=study).values_list("id", flat=True))

    report = task_pair_generate(study=study)

    assert report.changed is False
    assert pairs_of(study) == first
    assert list(TaskPair.objects.filter(study=study).values_list("id", flat=True)) == ids
    other = task_pair_generate(study=study, seed=6)
    assert other.changed is True
    assert pairs_of(study) != first


@pytest.mark.django_db
def test_the_report_gives_the_uses_of_every_query_in_every_condition():
    study = plain_study(classes=3, per_class=2, count=4)

    report = task_pair_generate(study=study)

    assert report.n_pairs == 4
    assert report.balanced
    assert report.spread == {"no-xai": (0, 1), "sbsm-0": (0, 1)}
    assert sum(u["no-xai"] for u in report.uses.values()) == 4
    assert report.comparisons == {"no-xai/sbsm-0": 4}
    assert report.as_dict()["balanced"] is True


@pytest.mark.django_db
def test_pairs_in_use_cannot_change_but_generating_them_again_is_allowed():
    study = plain_study(classes=3, per_class=1)
    pair = TaskPair.objects.filter(study=study).first()
    Assignment.objects.create(
        study=study,
        participant=Participant.objects.create(source="lab", external_id="P1"),
        task_pair=pair,
        order="ab",
    )
    before = pairs_of(study)

    with pytest.raises(TaskPairError, match="has assignments"):
        task_pair_generate(study=study, seed=99)

    assert task_pair_generate(study=study).changed is False
    assert pairs_of(study) == before


@pytest.mark.django_db
def test_three_conditions_get_count_pairs_per_comparison():
    study = plain_study(classes=4, per_class=2, treatments=2, count=5)
    names = dict(study.conditions.values_list("id", "name"))

    comparisons = Counter((names[a], names[b]) for _, _, a, _, b in pairs_of(study))

    assert comparisons == {("no-xai", "sbsm-0"): 5, ("no-xai", "sbsm-1"): 5}
