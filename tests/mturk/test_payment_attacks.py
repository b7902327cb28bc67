"""Paying only for work done here, by the worker MTurk says did it: forged worker ids, a HIT
taken over under another assignment, and submissions posted to MTurk without the study's
data. Each test is an attack that was paid before the sync and approval checked for it."""

from __future__ import annotations

import pytest

from mturk.client import MTurkError
from mturk.models import AssignmentRecord, Hit, RequestRecord
from mturk.services import assignment_approve, assignments_sync, hit_publish
from mturk.services.hit_settings import MTurkSettingsError, hit_settings_from_study
from studyplatform.studies.models import Assignment
from tests.mturk.conftest import platform_assignment


@pytest.fixture
def published(study, client, local_mturk):
    hit_publish(study=study, client=client, confirm=True)
    return list(Hit.objects.order_by("batch"))


def accept(local_mturk, worker_id: str, hit: Hit) -> str:
    local_mturk.worker(worker_id, country="US", approved_count=2000, approval_rate=99)
    return local_mturk.accept(worker_id, hit.hit_id)


def submit_on_mturk(local_mturk, mturk_id: str) -> None:
    status, _ = local_mturk.post_form("/mturk/externalSubmit", {"assignmentId": mturk_id})
    assert status == 200


def granted_workers() -> set[str]:
    return {
        row.params["WorkerId"]
        for row in RequestRecord.objects.filter(operation="associate_qualification_with_worker")
    }


def balance(local_mturk) -> str:
    return local_mturk.store.counts()["balance"]


def test_work_done_under_a_forged_worker_id_is_not_paid(study, client, local_mturk, published):
    # AREAL accepts on MTurk, then opens the page as AFAKE1 and does the study under that id.
    mturk_id = accept(local_mturk, "AREAL", published[0])
    platform_assignment(
        study=study,
        worker_id="AFAKE1",
        mturk_assignment_id=mturk_id,
        hit_id=published[0].hit_id,
        status="submitted",
    )
    submit_on_mturk(local_mturk, mturk_id)
    before = balance(local_mturk)

    report = assignments_sync(study=study, client=client)

    assert report.mismatched == [
        f"{mturk_id}: MTurk says worker AREAL, the platform recorded AFAKE1"
    ]
    assert len(report.held) == 1
    assert report.held[0].startswith(f"{mturk_id} (mismatched")
    assert granted_workers() == {"AREAL"}  # the worker MTurk knows, not the forged id
    for force in (False, True):
        with pytest.raises(MTurkError, match="does not match: MTurk says worker AREAL"):
            assignment_approve(mturk_assignment_id=mturk_id, client=client, force=force)
    assert balance(local_mturk) == before
    assert AssignmentRecord.objects.get(assignment_id=mturk_id).status == "Submitted"


def test_a_hit_taken_over_under_another_hit_is_not_paid(study, client, local_mturk, published):
    mturk_id = accept(local_mturk, "AWORKER1", published[0])
    platform_assignment(
        study=study,
        worker_id="AWORKER1",
        mturk_assignment_id=mturk_id,
        hit_id=published[1].hit_id,
        status="submitted",
    )
    submit_on_mturk(local_mturk, mturk_id)

    report = assignments_sync(study=study, client=client)

    assert report.mismatched == [
        f"{mturk_id}: MTurk says HIT {published[0].hit_id}, "
        f"the platform recorded {published[1].hit_id}"
    ]
    with pytest.raises(MTurkError, match="does not match"):
        assignment_approve(mturk_assignment_id=mturk_id, client=client, force=True)


def test_an_empty_submit_is_held_and_never_paid(study, client, local_mturk, published):
    # The worker accepts and posts MTurk's form without ever opening the study's page.
    mturk_id = accept(local_mturk, "AEMPTY", published[0])
    submit_on_mturk(local_mturk, mturk_id)
    before = balance(local_mturk)

    report = assignments_sync(study=study, client=client)

    assert report.unknown_here == [mturk_id]
    assert report.held[0].startswith(f"{mturk_id} (unknown; MTurk pays it at ")
    for force in (False, True):
        with pytest.raises(MTurkError, match="unknown on the platform"):
            assignment_approve(mturk_assignment_id=mturk_id, client=client, force=force)
    assert balance(local_mturk) == before


def test_the_reject_rule_rejects_empty_and_incomplete_submissions(
    study, client, local_mturk, published
):
    study.mturk = {**study.mturk, "incomplete_submissions": "reject"}
    study.save(update_fields=["mturk"])
    empty = accept(local_mturk, "AEMPTY", published[0])
    idle = accept(local_mturk, "AIDLE", published[0])
    platform_assignment(
        study=study, worker_id="AIDLE", mturk_assignment_id=idle, hit_id=published[0].hit_id
    )
    done = accept(local_mturk, "ADONE", published[0])
    platform_assignment(
        study=study,
        worker_id="ADONE",
        mturk_assignment_id=done,
        hit_id=published[0].hit_id,
        status="submitted",
    )
    for mturk_id in (empty, idle, done):
        submit_on_mturk(local_mturk, mturk_id)

    report = assignments_sync(study=study, client=client)

    assert sorted(report.rejected) == sorted([f"{empty} (unknown)", f"{idle} (incomplete)"])
    statuses = dict(AssignmentRecord.objects.values_list("assignment_id", "status"))
    assert statuses == {empty: "Rejected", idle: "Rejected", done: "Submitted"}
    assert Assignment.objects.get(mturk_assignment_id=idle).status == "rejected"
    assert local_mturk.calls("RejectAssignment") == 2
    assignments_sync(study=study, client=client)  # a second sync rejects nothing again
    assert local_mturk.calls("RejectAssignment") == 2
    assignment_approve(mturk_assignment_id=done, client=client)
    assert AssignmentRecord.objects.get(assignment_id=done).status == "Approved"


def test_an_incomplete_submission_is_paid_only_with_force(study, client, local_mturk, published):
    mturk_id = accept(local_mturk, "AIDLE", published[0])
    platform_assignment(
        study=study, worker_id="AIDLE", mturk_assignment_id=mturk_id, hit_id=published[0].hit_id
    )
    submit_on_mturk(local_mturk, mturk_id)
    assignments_sync(study=study, client=client)

    with pytest.raises(MTurkError, match="not complete on the platform"):
        assignment_approve(mturk_assignment_id=mturk_id, client=client)
    assignment_approve(mturk_assignment_id=mturk_id, client=client, force=True)

    assert AssignmentRecord.objects.get(assignment_id=mturk_id).status == "Approved"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"auto_approval_delay_hours": 1}, "auto_approval_delay_hours"),
        ({"incomplete_submissions": "pay"}, "incomplete_submissions"),
    ],
)
def test_an_auto_approval_delay_too_short_to_review_is_refused(study, change, field):
    study.mturk = {**study.mturk, **change}
    with pytest.raises(MTurkSettingsError, match=field):
        hit_settings_from_study(study)
    study.mturk = {key: value for key, value in study.mturk.items() if key not in change}
    settings = hit_settings_from_study(study)
    assert (settings.auto_approval_delay_seconds, settings.incomplete_submissions) == (
        72 * 3600,
        "hold",
    )


def test_a_grant_mturk_fails_does_not_stop_the_sync_and_the_next_sync_sends_it(
    study, client, local_mturk, published
):
    # Two workers submitted; MTurk answers the first grant with a ServiceFault (400: not retried
    # by the client). Both are still reconciled and the second granted; the next sync grants
    # the first with the same recorded request.
    ids = [accept(local_mturk, worker, published[0]) for worker in ("AONE", "ATWO")]
    for worker, mturk_id in zip(("AONE", "ATWO"), ids, strict=True):
        platform_assignment(
            study=study,
            worker_id=worker,
            mturk_assignment_id=mturk_id,
            hit_id=published[0].hit_id,
            status="submitted",
        )
        submit_on_mturk(local_mturk, mturk_id)
    local_mturk.fault("AssociateQualificationWithWorker", "fault", 1)

    first = assignments_sync(study=study, client=client)

    assert first.listed == 2
    assert len(first.grant_failed) == 1
    assert first.grant_failed[0].endswith(": ServiceFault")
    failed_worker = first.grant_failed[0].split(":")[0]
    assert set(first.granted) == {"AONE", "ATWO"} - {failed_worker}
    pending = RequestRecord.objects.get(
        operation="associate_qualification_with_worker", params__WorkerId=failed_worker
    )
    assert pending.status == RequestRecord.Status.PENDING
    assert "ServiceFault" in pending.error

    second = assignments_sync(study=study, client=client)

    assert second.grant_failed == []
    assert second.granted == [failed_worker]
    pending.refresh_from_db()
    assert pending.status == RequestRecord.Status.DONE
    for mturk_id in ids:  # both are payable: the failed grant held nobody's money
        assignment_approve(mturk_assignment_id=mturk_id, client=client)
