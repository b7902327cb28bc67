"""Property tests of the assignment rules over random studies and random sequences of workers
arriving, idling away, returning their HIT on MTurk and submitting.

After every step: nobody holds two assignments of a study or sees a class twice (so never in
both conditions), no pair holds more than ``repetitions`` workers, and a new assignment always
takes an emptiest pair the worker may get, in its emptier order (with no cell ever freed, a
pair's orders stay within 1). At the end, fresh workers fill every pair to its repetitions
with distinct workers, whatever was abandoned or returned before.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studyplatform.studies.models import Assignment, TaskPair
from studyplatform.studies.services.assignments import (
    AssignmentRefused,
    assignment_release_idle,
    assignment_return,
    assignment_start,
)
from tests.factories import plain_study

pytestmark = pytest.mark.django_db

HOLDING = ("active", "submitted", "approved")
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["arrive", "arrive", "abandon", "return", "submit"]), st.integers(0, 7)
    ),
    max_size=40,
)


class World:
    """The study as the test sees it, checked against the database after every step."""

    def __init__(self, study):
        self.study = study
        self.pairs = {
            p.number: p
            for p in TaskPair.objects.filter(study=study).select_related("query_a", "query_b")
        }
        self.classes = {
            n: {p.query_a.category_id, p.query_b.category_id} for n, p in self.pairs.items()
        }
        self.mturk_ids: dict[str, str] = {}
        self.issued = Counter()
        self.freed = False

    def holders(self):
        return Counter(
            Assignment.objects.filter(study=self.study, status__in=HOLDING).values_list(
                "task_pair__number", "order"
            )
        )

    def seen(self, worker):
        seen = set()
        for number in Assignment.objects.filter(
            study=self.study, participant__external_id=worker
        ).values_list("task_pair__number", flat=True):
            seen |= self.classes[number]
        return seen

    def emptiest(self, worker, holders):
        """Holders of the emptiest pair ``worker`` may get, None when there is none."""
        seen = self.seen(worker)
        counts = [
            holders[(n, "ab")] + holders[(n, "ba")]
            for n in self.pairs
            if not (self.classes[n] & seen)
            if holders[(n, "ab")] + holders[(n, "ba")] < self.study.repetitions
        ]
        return min(counts, default=None)

    def arrive(self, worker):
        if worker not in self.mturk_ids:
            self.mturk_ids[worker] = self.new_id(worker)
        holders = self.holders()
        before = set(Assignment.objects.filter(study=self.study).values_list("pk", flat=True))
        own_before = list(
            Assignment.objects.filter(study=self.study, participant__external_id=worker)
            .order_by("-id")
            .values_list("pk", "status")
        )
        expected_min = self.emptiest(worker, holders)
        refusal = None
        try:
            assignment = assignment_start(
                study=self.study,
                source="mturk",
                external_id=worker,
                mturk_assignment_id=self.mturk_ids[worker],
            )
        except AssignmentRefused as exc:
            refusal = exc.reason
        if refusal is not None:
            statuses = [status for _, status in own_before]
            if refusal == "already_done":
                assert "submitted" in statuses
            elif refusal == "no_cell":
                assert expected_min is None
            else:
                assert refusal == "expired"
                self.mturk_ids[worker] = self.new_id(worker)
            return
        if assignment.pk in before:
            # A resumption: the worker's own active, or last abandoned, assignment.
            assert own_before
            assert own_before[0][0] == assignment.pk
            assert own_before[0][1] in ("active", "abandoned")
            return
        cell = (assignment.task_pair.number, assignment.order)
        other = "ba" if assignment.order == "ab" else "ab"
        sibling = holders[(cell[0], other)]
        assert holders[cell] + sibling == expected_min, "psiTurk's rule: an emptiest allowed pair"
        assert holders[cell] <= sibling, "balanced: the pair's emptier order"

    def new_id(self, worker):
        self.issued[worker] += 1
        return f"{worker}-{self.issued[worker]}"

    def active(self, k):
        rows = list(Assignment.objects.filter(study=self.study, status="active").order_by("id"))
        return rows[k % len(rows)] if rows else None

    def abandon(self, k):
        assignment = self.active(k)
        if assignment is None:
            return
        Assignment.objects.filter(pk=assignment.pk).update(
            last_seen_at=timezone.now()
            - dt.timedelta(minutes=self.study.assignment_timeout_minutes + 1)
        )
        assert assignment_release_idle(study=self.study) == 1
        self.freed = True

    def return_(self, k):
        assignment = self.active(k)
        if assignment is None:
            return
        assignment_return(mturk_assignment_id=assignment.mturk_assignment_id)
        self.mturk_ids[assignment.participant.external_id] = self.new_id(
            assignment.participant.external_id
        )
        self.freed = True

    def submit(self, k):
        assignment = self.active(k)
        if assignment is not None:
            Assignment.objects.filter(pk=assignment.pk).update(status="submitted")

    def check(self):
        rows = list(
            Assignment.objects.filter(study=self.study).values_list(
                "participant__external_id", "task_pair__number", "order", "status"
            )
        )
        holding = Counter(worker for worker, _, _, status in rows if status in HOLDING)
        assert max(holding.values(), default=0) <= 1, "two HITs of one study"
        classes = defaultdict(list)
        for worker, number, _, _ in {(w, n, None, None) for w, n, _, _ in rows}:
            classes[worker].extend(self.classes[number])
        for worker, seen in classes.items():
            assert len(seen) == len(set(seen)), f"{worker} saw a class twice"
        holders = self.holders()
        per_pair = Counter()
        for (number, _), n in holders.items():
            per_pair[number] += n
        assert max(per_pair.values(), default=0) <= self.study.repetitions, "pair over-filled"
        if not self.freed:
            for number in self.pairs:
                assert abs(holders[(number, "ab")] - holders[(number, "ba")]) <= 1


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    classes=st.integers(2, 4),
    per_class=st.integers(1, 2),
    repetitions=st.integers(1, 3),
    seed=st.integers(0, 10_000),
    operations=OPERATIONS,
)
def test_random_arrivals_abandons_and_returns_keep_the_rules_and_fill_every_cell(
    classes, per_class, repetitions, seed, operations
):
    with transaction.atomic():
        study = plain_study(
            classes=classes, per_class=per_class, repetitions=repetitions, seed=seed
        )
        world = World(study)
        for operation, k in operations:
            if operation == "arrive":
                world.arrive(f"W{k}")
            else:
                getattr(world, "return_" if operation == "return" else operation)(k)
            world.check()

        refusal = None
        for i in range(len(world.pairs) * repetitions + 1):
            try:
                assignment_start(study=study, source="mturk", external_id=f"fresh{i}")
            except AssignmentRefused as exc:
                refusal = exc.reason
                break
        assert refusal == "no_cell", "fresh workers must be refused only once every pair is full"
        world.check()
        per_pair = defaultdict(list)
        for worker, number in Assignment.objects.filter(
            study=study, status__in=HOLDING
        ).values_list("participant__external_id", "task_pair__number"):
            per_pair[number].append(worker)
        assert len(per_pair) == len(world.pairs)
        assert all(len(set(w)) == len(w) == repetitions for w in per_pair.values())
        transaction.set_rollback(True)
