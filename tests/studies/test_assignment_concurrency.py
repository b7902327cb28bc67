"""Workers accepting at the same moment, each in its own thread and database connection, end
up in exactly the cells a sequential run of as many workers gives, and no cell over-fills."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from studyplatform.studies.models import Assignment
from studyplatform.studies.services.assignments import AssignmentRefused, assignment_start
from tests.factories import plain_study


def run_at_once(study, workers: list[str]) -> tuple[list[Assignment], list[str]]:
    """Start ``workers`` in threads released together; (assignments, refusal reasons)."""
    barrier = threading.Barrier(len(workers))
    results: list[Assignment] = []
    refused: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def accept(worker: str) -> None:
        try:
            barrier.wait()
            assignment = assignment_start(
                study=study, source="mturk", external_id=worker, mturk_assignment_id=f"A-{worker}"
            )
            with lock:
                results.append(assignment)
        except AssignmentRefused as exc:
            with lock:
                refused.append(exc.reason)
        except BaseException as exc:  # reported below, in the test's thread
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=accept, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    return results, refused


def cells_of(study) -> Counter:
    return Counter(
        Assignment.objects.filter(study=study, status="active").values_list(
            "task_pair__number", "order"
        )
    )


def check_like_sequential(n_workers: int, **sizes) -> None:
    concurrent_study = plain_study(seed=11, **sizes)
    sequential_study = plain_study(seed=11, **sizes)
    sequential_refused = []
    for i in range(n_workers):
        try:
            assignment_start(study=sequential_study, source="mturk", external_id=f"S{i}")
        except AssignmentRefused as exc:
            sequential_refused.append(exc.reason)

    assignments, refused = run_at_once(concurrent_study, [f"C{i}" for i in range(n_workers)])

    assert cells_of(concurrent_study) == cells_of(sequential_study)
    assert sorted(refused) == sorted(sequential_refused)
    assert len(assignments) + len(refused) == n_workers
    per_pair = Counter()
    for (number, _), n in cells_of(concurrent_study).items():
        per_pair[number] += n
    assert max(per_pair.values()) <= concurrent_study.repetitions
    assert len({a.participant_id for a in assignments}) == len(assignments)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_workers_at_once_on_postgresql_fill_cells_as_a_sequential_run(postgres):
    # 10 pairs x 6 workers = 60 places for 50 workers.
    check_like_sequential(50, classes=5, per_class=2, repetitions=6)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_workers_at_once_on_postgresql_never_over_fill_48_cells(postgres):
    # 8 pairs x 6 workers = 48 places: two workers must be refused.
    check_like_sequential(50, classes=4, per_class=2, repetitions=6)
    assert Assignment.objects.filter(study__seed=11).count() == 2 * 48


@pytest.mark.django_db(transaction=True)
def test_workers_at_once_on_the_configured_database_fill_cells_as_a_sequential_run():
    # SQLite serialises the writers with its single write lock; PostgreSQL with the row lock.
    check_like_sequential(12, classes=2, per_class=2, repetitions=4)
    assert connection.vendor in ("sqlite", "postgresql")
