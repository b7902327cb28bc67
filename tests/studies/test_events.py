"""Events are stored exactly once per client event id, and only when they make sense."""

from __future__ import annotations

import pytest
from django.db import IntegrityError

from studyplatform.studies.errors import HitRefused
from studyplatform.studies.models import Event, IQRRound
from studyplatform.studies.selectors.events import task_marks
from studyplatform.studies.services import events as events_module
from studyplatform.studies.services.events import event_record
from studyplatform.studies.services.hit import search_task_begin
from tests.studies.hit_helpers import build_assignment, build_study, hit_feature_set

pytestmark = pytest.mark.django_db
__all__ = ["hit_feature_set"]


@pytest.fixture
def assignment(hit_feature_set):
    return build_assignment(build_study(hit_feature_set))


@pytest.fixture
def task(assignment):
    return search_task_begin(task=assignment.tasks.get(position=1))


def shown(task) -> list[int]:
    return IQRRound.objects.get(task=task, number=0).ranking


def mark(task, image_id, event_id="e-1", kind="marked_not_relevant", **extra):
    return event_record(
        assignment=task.assignment,
        client_event_id=event_id,
        type=kind,
        task=task,
        image_id=image_id,
        **extra,
    )


def test_the_same_client_event_id_twice_stores_one_row(task):
    image = shown(task)[0]

    first, created = mark(task, image, client_time="2026-12-01T10:00:00Z", iqr_round=0)
    again, created_again = mark(task, image, client_time="2026-12-01T10:00:05Z", iqr_round=0)

    assert (created, created_again) == (True, False)
    assert first.pk == again.pk
    assert Event.objects.filter(client_event_id="e-1").count() == 1


def test_a_different_event_under_a_used_id_is_refused(task):
    first, second = shown(task)[:2]
    mark(task, first)

    with pytest.raises(HitRefused, match="already used") as refused:
        mark(task, second)

    assert refused.value.status == 409
    assert task_marks(task=task) == {first: "not_relevant"}


def test_a_race_between_two_copies_of_an_event_keeps_one_row(task, monkeypatch):
    """The second copy passes the first lookup, then meets the constraint on insert."""
    image = shown(task)[0]
    stored, _ = mark(task, image)
    real_filter = Event.objects.filter
    calls = {"n": 0}

    def first_lookup_misses(*args, **kwargs):
        calls["n"] += 1
        found = real_filter(*args, **kwargs)
        return found.none() if calls["n"] == 1 else found

    monkeypatch.setattr(Event.objects, "filter", first_lookup_misses)
    again, created = mark(task, image)

    assert not created
    assert again.pk == stored.pk
    assert real_filter(client_event_id="e-1").count() == 1


def test_a_judgement_of_an_image_never_shown_is_refused(task, hit_feature_set):
    never = (
        set(hit_feature_set.archive.images.values_list("pk", flat=True)) - set(shown(task))
    ).pop()

    with pytest.raises(HitRefused, match="never shown"):
        mark(task, never)

    assert not Event.objects.filter(type="marked_not_relevant").exists()


def test_any_event_naming_an_image_needs_a_task_that_showed_it(task, hit_feature_set):
    never = (
        set(hit_feature_set.archive.images.values_list("pk", flat=True)) - set(shown(task))
    ).pop()

    for image_task in (None, task):
        with pytest.raises(HitRefused, match="never shown"):
            event_record(
                assignment=task.assignment,
                client_event_id="v",
                type="viewed_plain",
                task=image_task,
                image_id=never,
            )
    with pytest.raises(HitRefused, match="never shown"):
        event_record(
            assignment=task.assignment, client_event_id="v", type="page_view", image_id=10**9
        )
    assert not Event.objects.filter(client_event_id="v").exists()


def test_an_event_for_another_assignments_task_is_refused(task):
    other = build_assignment(task.assignment.study, worker="OTHER")

    with pytest.raises(HitRefused, match="another assignment") as refused:
        event_record(
            assignment=other,
            client_event_id="x",
            type="marked_relevant",
            task=task,
            image_id=shown(task)[0],
        )

    assert refused.value.status == 403
    assert not Event.objects.filter(assignment=other).exists()


def test_events_of_an_assignment_no_longer_active_are_refused(task):
    task.assignment.status = "returned"
    task.assignment.save()

    with pytest.raises(HitRefused, match="returned"):
        mark(task, shown(task)[0])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"payload": {"note": "x" * 5000}}, "limit is 4096"),
        ({"payload": ["not", "an", "object"]}, "JSON object"),
        ({"client_time": "yesterday"}, "ISO 8601"),
        ({"iqr_round": 7}, "round 7 has not been shown"),
    ],
)
def test_malformed_events_are_refused_and_nothing_is_stored(task, extra, message):
    with pytest.raises(HitRefused, match=message):
        mark(task, shown(task)[0], **extra)

    assert not Event.objects.filter(client_event_id="e-1").exists()


@pytest.mark.parametrize("event_id", ["", "srv:shown:1:0", "a b", "x" * 65, None])
def test_malformed_or_reserved_client_event_ids_are_refused(task, event_id):
    with pytest.raises(HitRefused, match="client_event_id"):
        mark(task, shown(task)[0], event_id=event_id)


def test_judgements_are_reversible_and_replayed_in_order(task):
    image = shown(task)[0]
    mark(task, image, "a", "marked_relevant")
    mark(task, image, "b", "marked_not_relevant")
    mark(task, image, "c", "unmarked")
    after_unmark = task_marks(task=task)
    mark(task, image, "d", "marked_relevant")

    assert after_unmark == {}
    assert task_marks(task=task) == {image: "relevant"}


def test_a_constraint_violation_other_than_a_replay_is_not_swallowed(task, monkeypatch):
    def broken(**kwargs):
        raise IntegrityError("disk full")

    monkeypatch.setattr(events_module.Event.objects, "create", broken)

    with pytest.raises(IntegrityError, match="disk full"):
        mark(task, shown(task)[0])
