"""Starting an MTurk assignment always queues the "participated" qualification."""

from unittest import mock

from mturk.receivers import participation_grant_on_start
from mturk.tasks import mturk_participation_grant
from studyplatform.studies.models import Assignment
from studyplatform.studies.services.assignments import assignment_start
from studyplatform.studies.signals import assignment_started


def test_the_mturk_app_connects_the_grant_to_assignment_start():
    sync_receivers, _ = assignment_started._live_receivers(Assignment)
    assert participation_grant_on_start in sync_receivers


def test_a_new_mturk_assignment_queues_the_grant_after_commit(
    study, django_capture_on_commit_callbacks
):
    with (
        mock.patch.object(mturk_participation_grant, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        assignment = assignment_start(
            study=study, source="mturk", external_id="AWORKER1", mturk_assignment_id="3A1"
        )
    assert len(callbacks) == 1
    delay.assert_called_once_with(assignment.pk)


def test_resuming_an_assignment_or_a_lab_participant_queues_nothing(
    study, django_capture_on_commit_callbacks
):
    assignment_start(study=study, source="mturk", external_id="AWORKER1", mturk_assignment_id="3A1")
    with (
        mock.patch.object(mturk_participation_grant, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assignment_start(
            study=study, source="mturk", external_id="AWORKER1", mturk_assignment_id="3A1"
        )
        assignment_start(study=study, source="lab", external_id="P001")
    delay.assert_not_called()


def test_a_study_without_mturk_settings_queues_nothing(study, django_capture_on_commit_callbacks):
    study.mturk = {}
    study.save(update_fields=["mturk"])
    with (
        mock.patch.object(mturk_participation_grant, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assignment_start(study=study, source="mturk", external_id="AWORKER2")
    delay.assert_not_called()
