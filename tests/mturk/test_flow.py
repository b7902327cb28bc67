"""The MTurk round trip: publish, workers accept and submit through the endpoint, sync,
approve, bonus, and the repeat-worker block; with lost answers, throttling and faults."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from mturk.client import MTurkError, MTurkServiceError, MTurkThrottled, MTurkUnreachable
from mturk.models import AssignmentRecord, Bonus, Hit
from mturk.selectors import money_spent
from mturk.services import (
    assignment_approve,
    assignment_reject,
    assignments_sync,
    bonus_send,
    hit_publish,
    participation_grant,
    workers_notify,
)
from studyplatform.studies.models import Assignment
from tests.mturk.conftest import platform_assignment


@pytest.fixture
def published(study, client, local_mturk):
    hit_publish(study=study, client=client, confirm=True)
    return list(Hit.objects.order_by("batch"))


def start(local_mturk, study, client, worker_id: str, hit: Hit) -> Assignment:
    """A worker accepts on the endpoint and opens the platform's HIT page (its Assignment row),
    and is granted the participated qualification (which the sync does for every worker MTurk
    lists)."""
    local_mturk.worker(worker_id, country="US", approved_count=2000, approval_rate=99)
    mturk_id = local_mturk.accept(worker_id, hit.hit_id)
    assignment = platform_assignment(
        study=study, worker_id=worker_id, mturk_assignment_id=mturk_id, hit_id=hit.hit_id
    )
    participation_grant(study=study, worker_id=worker_id, client=client)
    return assignment


def finish(local_mturk, assignment: Assignment) -> None:
    """The platform marks the data complete and the final form posts to externalSubmit."""
    assignment.status = Assignment.Status.SUBMITTED
    assignment.save()
    status, _ = local_mturk.post_form(
        "/mturk/externalSubmit", {"assignmentId": assignment.mturk_assignment_id}
    )
    assert status == 200


def test_a_worker_completes_and_is_paid_once(study, client, local_mturk, published):
    assignment = start(local_mturk, study, client, "AWORKER1", published[0])
    finish(local_mturk, assignment)
    report = assignments_sync(study=study, client=client)
    assert report.listed == 1
    assert report.submitted_on_mturk_incomplete_here == []
    assert report.unknown_here == []
    assignment_approve(mturk_assignment_id=assignment.mturk_assignment_id, client=client)
    assignment.refresh_from_db()
    assert assignment.status == Assignment.Status.APPROVED
    for _ in range(2):
        bonus_send(
            worker_id="AWORKER1",
            mturk_assignment_id=assignment.mturk_assignment_id,
            amount="0.50",
            reason="found all 12 targets",
            client=client,
        )
    assert len(local_mturk.store.bonuses()) == 1
    assert local_mturk.calls("SendBonus") == 1
    # 1.50 + 0.30 fee, 0.50 + 0.10 fee
    assert local_mturk.store.counts()["balance"] == "9997.60"
    spent = money_spent(study=study, environment="local")
    assert spent["total"] == Decimal("2.40")


def test_a_worker_who_took_one_hit_cannot_take_another(study, client, local_mturk, published):
    start(local_mturk, study, client, "AWORKER1", published[0])
    message = local_mturk.refused(
        "accept", {"worker_id": "AWORKER1", "hit_id": published[1].hit_id}
    )
    assert "you do not qualify" in message
    _status, listing = local_mturk.get("/worker/AWORKER1/")
    assert published[1].hit_id not in listing  # hidden from discovery too


def test_a_worker_outside_the_us_and_canada_cannot_accept(study, client, local_mturk, published):
    local_mturk.worker("AGB", country="GB", approved_count=5000, approval_rate=100)
    message = local_mturk.refused("accept", {"worker_id": "AGB", "hit_id": published[0].hit_id})
    assert "00000000000000000071" in message


def test_a_bonus_whose_answer_was_lost_is_not_paid_twice(study, client, local_mturk, published):
    assignment = start(local_mturk, study, client, "AWORKER1", published[0])
    finish(local_mturk, assignment)
    assignments_sync(study=study, client=client)
    local_mturk.fault("SendBonus", "drop", count=3)
    args = {
        "worker_id": "AWORKER1",
        "mturk_assignment_id": assignment.mturk_assignment_id,
        "amount": "1.00",
        "reason": "bonus for accuracy",
        "client": client,
    }
    with pytest.raises(MTurkUnreachable):
        bonus_send(**args)
    assert Bonus.objects.get().status == Bonus.Status.PENDING
    bonus = bonus_send(**args)
    assert bonus.status == Bonus.Status.SENT
    assert len(local_mturk.store.bonuses()) == 1
    assert Bonus.objects.count() == 1


def test_a_throttled_bonus_is_left_pending_and_sent_once_later(
    study, client, local_mturk, published
):
    assignment = start(local_mturk, study, client, "AWORKER1", published[0])
    finish(local_mturk, assignment)
    assignments_sync(study=study, client=client)
    local_mturk.fault("SendBonus", "throttle", count=3)
    args = {
        "worker_id": "AWORKER1",
        "mturk_assignment_id": assignment.mturk_assignment_id,
        "amount": "1.00",
        "reason": "bonus",
        "client": client,
    }
    with pytest.raises(MTurkThrottled):
        bonus_send(**args)
    assert local_mturk.store.bonuses() == []
    bonus_send(**args)
    assert len(local_mturk.store.bonuses()) == 1


def test_a_bonus_with_another_amount_for_the_same_reason_is_refused(
    study, client, local_mturk, published
):
    assignment = start(local_mturk, study, client, "AWORKER1", published[0])
    finish(local_mturk, assignment)
    assignments_sync(study=study, client=client)
    common = {"worker_id": "AWORKER1", "mturk_assignment_id": assignment.mturk_assignment_id}
    bonus_send(**common, amount="1.00", reason="r", client=client)
    with pytest.raises(MTurkError, match=r"already exists"):
        bonus_send(**common, amount="2.00", reason="r", client=client)
    with pytest.raises(MTurkError, match="not an amount"):
        bonus_send(**common, amount="0.505", reason="other", client=client)
    assert len(local_mturk.store.bonuses()) == 1


def test_a_bonus_for_an_assignment_of_another_worker_is_refused(
    study, client, local_mturk, published
):
    assignment = start(local_mturk, study, client, "AWORKER1", published[0])
    finish(local_mturk, assignment)
    assignments_sync(study=study, client=client)
    with pytest.raises(MTurkError, match="has no synced assignment"):
        bonus_send(
            worker_id="AOTHER",
            mturk_assignment_id=assignment.mturk_assignment_id,
            amount="1.00",
            reason="r",
            client=client,
        )
    assert not Bonus.objects.exists()


def test_an_approval_whose_answer_was_lost_is_recorded_once(study, client, local_mturk, published):
    assignment = start(local_mturk, study, client, "AWORKER1", published[0])
    finish(local_mturk, assignment)
    assignments_sync(study=study, client=client)
    local_mturk.fault("ApproveAssignment", "drop", count=1)
    assignment_approve(mturk_assignment_id=assignment.mturk_assignment_id, client=client)
    assert AssignmentRecord.objects.get().status == "Approved"
    assert local_mturk.store.counts()["balance"] == "9998.20"  # paid once


def test_a_service_fault_on_approval_changes_nothing_here(study, client, local_mturk, published):
    assignment = start(local_mturk, study, client, "AWORKER1", published[0])
    finish(local_mturk, assignment)
    assignments_sync(study=study, client=client)
    local_mturk.fault("ApproveAssignment", "fault", count=1)
    with pytest.raises(MTurkServiceError):
        assignment_approve(mturk_assignment_id=assignment.mturk_assignment_id, client=client)
    assignment.refresh_from_db()
    assert assignment.status == Assignment.Status.SUBMITTED
    assert AssignmentRecord.objects.get().status == "Submitted"
    assignment_approve(mturk_assignment_id=assignment.mturk_assignment_id, client=client)
    assert AssignmentRecord.objects.get().status == "Approved"


def test_an_assignment_incomplete_here_is_reported_and_not_approved(
    study, client, local_mturk, published
):
    assignment = start(local_mturk, study, client, "AWORKER1", published[0])
    local_mturk.control("submit", {"assignment_id": assignment.mturk_assignment_id})
    report = assignments_sync(study=study, client=client)
    assert report.submitted_on_mturk_incomplete_here == [assignment.mturk_assignment_id]
    with pytest.raises(MTurkError, match="not complete on the platform"):
        assignment_approve(mturk_assignment_id=assignment.mturk_assignment_id, client=client)
    assert local_mturk.calls("ApproveAssignment") == 0


def test_sync_reports_a_failed_final_submit_and_frees_abandoned_cells(
    study, client, local_mturk, published
):
    done_here = start(local_mturk, study, client, "AWORKER1", published[0])
    done_here.status = Assignment.Status.SUBMITTED
    done_here.save()  # complete here, but the submit never reached MTurk
    gone = start(local_mturk, study, client, "AWORKER2", published[0])
    Assignment.objects.filter(pk=gone.pk).update(started_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    fresh = start(local_mturk, study, client, "AWORKER3", published[0])
    report = assignments_sync(study=study, client=client)
    assert report.complete_here_not_submitted_on_mturk == [done_here.mturk_assignment_id]
    assert report.returned == [gone.mturk_assignment_id]
    gone.refresh_from_db()
    fresh.refresh_from_db()
    assert gone.status == Assignment.Status.RETURNED
    assert fresh.status == Assignment.Status.ACTIVE


def test_sync_reports_workers_unknown_to_the_platform(study, client, local_mturk, published):
    local_mturk.worker("ASTRANGER")
    mturk_id = local_mturk.accept("ASTRANGER", published[1].hit_id)
    local_mturk.control("submit", {"assignment_id": mturk_id})
    report = assignments_sync(study=study, client=client)
    assert report.unknown_here == [mturk_id]


def test_a_rejection_needs_a_reason(study, client, local_mturk, published):
    assignment = start(local_mturk, study, client, "AWORKER1", published[0])
    finish(local_mturk, assignment)
    assignments_sync(study=study, client=client)
    with pytest.raises(MTurkError, match="needs a reason"):
        assignment_reject(
            mturk_assignment_id=assignment.mturk_assignment_id, client=client, reason=" "
        )
    assignment_reject(
        mturk_assignment_id=assignment.mturk_assignment_id, client=client, reason="no searches"
    )
    assignment.refresh_from_db()
    assert assignment.status == Assignment.Status.REJECTED
    with pytest.raises(MTurkError, match="Rejected, not Submitted"):
        assignment_approve(mturk_assignment_id=assignment.mturk_assignment_id, client=client)


def test_workers_are_notified_in_batches_of_100(study, client, local_mturk, published):
    worker_ids = [f"AW{i}" for i in range(150)]
    failures = workers_notify(
        worker_ids=worker_ids, subject="Thanks", message="Done.", client=client
    )
    assert local_mturk.calls("NotifyWorkers") == 2
    assert len(failures) == 150  # none of them worked for us: MTurk's HardFailure each


def test_publishing_is_refused_when_the_balance_does_not_cover_the_estimate(
    study, client, local_mturk
):
    local_mturk.control("balance", {"amount": "40.00"})
    with pytest.raises(MTurkError, match=r"does not cover the estimate \$43\.20"):
        hit_publish(study=study, client=client, confirm=True)
    assert local_mturk.store.counts()["hits"] == 0
    assert not Hit.objects.exists()
