"""Opening a HIT grants nothing on MTurk: the "participated" qualification goes to the worker
MTurk lists at sync (tests/mturk/test_payment_attacks.py), never to a worker id from a URL."""

from mturk.models import RequestRecord
from studyplatform.studies.models import Assignment
from studyplatform.studies.services.assignments import assignment_start
from studyplatform.studies.signals import assignment_started


def test_the_mturk_app_reacts_to_no_assignment_start():
    sync_receivers, async_receivers = assignment_started._live_receivers(Assignment)
    assert not any(r.__module__.startswith("mturk") for r in [*sync_receivers, *async_receivers])


def test_a_new_mturk_assignment_queues_no_mturk_call(study, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assignment_start(
            study=study, source="mturk", external_id="AFORGED1", mturk_assignment_id="3A1"
        )
    assert callbacks == []
    assert not RequestRecord.objects.exists()
