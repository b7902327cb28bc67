"""Sync MTurk's assignments with the platform's, approve and reject them.

MTurk lists only submitted, approved and rejected assignments (``ListAssignmentsForHIT``);
an accepted one that is never submitted simply disappears (returned or abandoned). The sync
reconciles both sides and reports every mismatch rather than guessing:

- submitted on MTurk but incomplete here (the worker's data is missing: do not approve blindly),
- listed on MTurk but unknown here (the worker never reached the platform's page),
- complete here but not submitted on MTurk (the final submit to MTurk failed),
- listed with another worker or HIT than the platform recorded (a forged or taken-over id),
- active here, absent on MTurk and past the assignment duration: returned or abandoned, and
  marked ``returned`` so that its (task pair, order) cell is free again.

A submission of the first three kinds is never approved; the study's ``incomplete_submissions``
rule says whether the sync holds it for a person (the report says when MTurk would pay it by
itself) or rejects it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from mturk.client import MTurkError, MTurkServiceError, client_environment, mturk_call
from mturk.models import AssignmentRecord, Hit
from mturk.services.calls import request_once
from mturk.services.hit_settings import hit_settings_from_study
from mturk.services.qualifications import participation_grant
from studyplatform.studies.models import Assignment
from studyplatform.studies.services.assignments import assignment_return

MAX_RESULTS = 100


@dataclass
class SyncReport:
    """What one sync found; every list holds MTurk assignment ids (``held`` and ``rejected``
    entries also say why)."""

    listed: int = 0
    submitted_on_mturk_incomplete_here: list[str] = field(default_factory=list)
    unknown_here: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    complete_here_not_submitted_on_mturk: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)
    status_updated: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    granted: list[str] = field(default_factory=list)
    grant_failed: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"listed on MTurk: {self.listed}",
            f"submitted on MTurk but incomplete here: {self.submitted_on_mturk_incomplete_here}",
            f"on MTurk but unknown here: {self.unknown_here}",
            f"another worker or HIT on MTurk than here: {self.mismatched}",
            f"complete here but not submitted on MTurk: "
            f"{self.complete_here_not_submitted_on_mturk}",
            f"returned or abandoned (cell freed): {self.returned}",
            f"status mirrored from MTurk: {self.status_updated}",
            f"held for review (MTurk pays them at the time shown unless rejected): {self.held}",
            f"rejected by the study's rule: {self.rejected}",
            f"workers given the participated qualification: {self.granted}",
            f"grants MTurk refused or failed (retried by the next sync): {self.grant_failed}",
        ]


# What a worker is told when the sync rejects a submission the platform cannot pay.
REJECT_REASONS = {
    "unknown": "The study's page has no record of this assignment: the HIT was submitted "
    "without doing the study.",
    "incomplete": "The study's tasks were not completed on the study's page.",
    "mismatched": "This assignment was done on the study's page under another worker or HIT.",
}


def assignments_list(*, client: Any, hit_id: str) -> list[dict]:
    """Every listed assignment of ``hit_id``, following ``NextToken``."""
    out: list[dict] = []
    token = None
    while True:
        params: dict[str, Any] = {"HITId": hit_id, "MaxResults": MAX_RESULTS}
        if token:
            params["NextToken"] = token
        page = mturk_call(client, "list_assignments_for_hit", **params)
        out.extend(page.get("Assignments", []))
        token = page.get("NextToken")
        if not token:
            return out


def assignments_sync(*, study: Any, client: Any, now: dt.datetime | None = None) -> SyncReport:
    """List the assignments of every published HIT of the study and reconcile (see module).

    Side effects: ``AssignmentRecord`` rows mirror MTurk's listing; the "participated"
    qualification is granted to each worker MTurk lists (the worker MTurk knows, never an id
    typed into a URL; a grant MTurk fails is listed in ``grant_failed`` and sent again by the
    next sync); a submission the platform cannot pay (unknown here, incomplete here, or
    another worker or HIT than here) is held in the report or rejected, by the study's
    ``incomplete_submissions`` rule; assignments gone from MTurk are marked returned.
    """
    environment = client_environment(client)
    now = now or timezone.now()
    settings = hit_settings_from_study(study)
    report = SyncReport()
    listed_ids: set[str] = set()
    workers: list[str] = []
    for hit in Hit.objects.filter(environment=environment, study=study).exclude(hit_id=""):
        for item in assignments_list(client=client, hit_id=hit.hit_id):
            listed_ids.add(item["AssignmentId"])
            report.listed += 1
            AssignmentRecord.objects.update_or_create(
                assignment_id=item["AssignmentId"],
                defaults={
                    "hit": hit,
                    "worker_id": item["WorkerId"],
                    "status": item["AssignmentStatus"],
                    "submit_time": item.get("SubmitTime"),
                },
            )
            workers.append(item["WorkerId"])
            problem = _reconcile_one(study=study, item=item, report=report)
            if problem and item["AssignmentStatus"] == AssignmentRecord.Status.SUBMITTED:
                _apply_rule(item, problem, settings.incomplete_submissions, client, report)
    for worker_id in dict.fromkeys(workers):
        # One grant MTurk fails (throttled past the client's retries, a ServiceFault) must not
        # stop the sync that pays everyone: its request stays pending and the next sync sends it.
        try:
            granted = participation_grant(study=study, worker_id=worker_id, client=client)
        except MTurkServiceError as exc:
            report.grant_failed.append(f"{worker_id}: {exc.code}")
            continue
        if granted:
            report.granted.append(worker_id)
    here = Assignment.objects.filter(study=study, participant__source="mturk").exclude(
        mturk_assignment_id=""
    )
    deadline = dt.timedelta(seconds=settings.assignment_duration_seconds)
    for assignment in here.exclude(mturk_assignment_id__in=listed_ids):
        if assignment.status in (Assignment.Status.SUBMITTED, Assignment.Status.APPROVED):
            report.complete_here_not_submitted_on_mturk.append(assignment.mturk_assignment_id)
        elif (
            assignment.status == Assignment.Status.ACTIVE and assignment.started_at + deadline < now
        ):
            assignment_return(mturk_assignment_id=assignment.mturk_assignment_id)
            report.returned.append(assignment.mturk_assignment_id)
    return report


def _apply_rule(item: dict, problem: str, rule: str, client: Any, report: SyncReport) -> None:
    assignment_id = item["AssignmentId"]
    if rule == "reject":
        assignment_reject(
            mturk_assignment_id=assignment_id, client=client, reason=REJECT_REASONS[problem]
        )
        report.rejected.append(f"{assignment_id} ({problem})")
    else:
        pays_at = item.get("AutoApprovalTime") or "the end of the auto-approval delay"
        report.held.append(f"{assignment_id} ({problem}; MTurk pays it at {pays_at})")


def _mismatch(assignment: Assignment, item: dict) -> str:
    """Empty when MTurk's worker and HIT are the platform's; else a sentence saying how not."""
    worker = assignment.participant.external_id
    if assignment.participant.source != "mturk" or worker != item["WorkerId"]:
        return f"MTurk says worker {item['WorkerId']}, the platform recorded {worker}"
    if item.get("HITId") and assignment.hit_id != item["HITId"]:
        return f"MTurk says HIT {item['HITId']}, the platform recorded {assignment.hit_id or '-'}"
    return ""


def _reconcile_one(*, study: Any, item: dict, report: SyncReport) -> str:
    """Compare one listed assignment with the platform's; the problem found ("unknown",
    "mismatched", "incomplete") or "" when the platform holds complete data of that worker."""
    assignment_id = item["AssignmentId"]
    assignment = (
        Assignment.objects.filter(study=study, mturk_assignment_id=assignment_id)
        .select_related("participant")
        .first()
    )
    if assignment is None:
        report.unknown_here.append(assignment_id)
        return "unknown"
    mismatch = _mismatch(assignment, item)
    if mismatch:
        report.mismatched.append(f"{assignment_id}: {mismatch}")
        return "mismatched"
    status = item["AssignmentStatus"]
    complete = assignment.status in (
        Assignment.Status.SUBMITTED,
        Assignment.Status.APPROVED,
        Assignment.Status.REJECTED,
    )
    if not complete:
        report.submitted_on_mturk_incomplete_here.append(assignment_id)
        return "incomplete"
    mirrored = {"Approved": Assignment.Status.APPROVED, "Rejected": Assignment.Status.REJECTED}
    if status in mirrored and assignment.status != mirrored[status]:
        assignment.status = mirrored[status]
        assignment.save(update_fields=["status"])
        report.status_updated.append(assignment_id)
    return ""


def _record_for(*, mturk_assignment_id: str, client: Any) -> AssignmentRecord:
    record = AssignmentRecord.objects.filter(assignment_id=mturk_assignment_id).first()
    if record is None:
        raise MTurkError(
            f"Assignment {mturk_assignment_id} is not known from a sync: run `mturk sync` first."
        )
    if record.hit.environment != client_environment(client):
        raise MTurkError(
            f"Assignment {mturk_assignment_id} belongs to the {record.hit.environment} "
            f"environment, not {client_environment(client)}."
        )
    return record


def _status_on_mturk(client: Any, mturk_assignment_id: str) -> str:
    return mturk_call(client, "get_assignment", AssignmentId=mturk_assignment_id)["Assignment"][
        "AssignmentStatus"
    ]


def assignment_approve(
    *, mturk_assignment_id: str, client: Any, feedback: str = "", force: bool = False
) -> AssignmentRecord:
    """Approve (pay) a submitted assignment whose data is complete here (``force`` skips that
    check, and that check only). Approving twice is refused by MTurk; an approval whose answer
    was lost is recognised and recorded.

    Raises :class:`MTurkError`, whatever ``force`` says, for a submission the platform cannot
    match: no assignment here under that id, or MTurk's worker or HIT differs from the
    platform's record (someone else's work, or a HIT taken over).
    """
    record = _record_for(mturk_assignment_id=mturk_assignment_id, client=client)
    if record.status == AssignmentRecord.Status.APPROVED:
        return record
    if record.status != AssignmentRecord.Status.SUBMITTED:
        raise MTurkError(f"Assignment {mturk_assignment_id} is {record.status}, not Submitted.")
    here = (
        Assignment.objects.filter(mturk_assignment_id=mturk_assignment_id)
        .select_related("participant")
        .first()
    )
    if here is None:
        raise MTurkError(
            f"Assignment {mturk_assignment_id} is unknown on the platform: the worker never "
            "opened the study's page under it; it is not paid."
        )
    mismatch = _mismatch(here, {"WorkerId": record.worker_id, "HITId": record.hit.hit_id})
    if mismatch:
        raise MTurkError(f"Assignment {mturk_assignment_id} does not match: {mismatch}.")
    if not force and here.status != Assignment.Status.SUBMITTED:
        raise MTurkError(
            f"Assignment {mturk_assignment_id} is not complete on the platform "
            f"({here.status}); approve it with force only after checking."
        )
    params = {"AssignmentId": mturk_assignment_id}
    if feedback:
        params["RequesterFeedback"] = feedback[:1024]

    def applied(exc: MTurkServiceError) -> bool:
        return _status_on_mturk(client, mturk_assignment_id) == "Approved"

    request_once(
        client=client,
        environment=record.hit.environment,
        key=f"approve:{mturk_assignment_id}",
        operation="approve_assignment",
        params=params,
        already_done=applied,
    )
    with transaction.atomic():
        record.status = AssignmentRecord.Status.APPROVED
        record.save(update_fields=["status", "synced_at"])
        here.status = Assignment.Status.APPROVED
        here.save(update_fields=["status"])
    return record


def assignment_reject(*, mturk_assignment_id: str, client: Any, reason: str) -> AssignmentRecord:
    """Reject a submitted assignment; ``reason`` (shown to the worker) is required."""
    reason = (reason or "").strip()
    if not reason:
        raise MTurkError("A rejection needs a reason; the worker sees it.")
    record = _record_for(mturk_assignment_id=mturk_assignment_id, client=client)
    if record.status == AssignmentRecord.Status.REJECTED:
        return record
    if record.status != AssignmentRecord.Status.SUBMITTED:
        raise MTurkError(f"Assignment {mturk_assignment_id} is {record.status}, not Submitted.")

    def applied(exc: MTurkServiceError) -> bool:
        return _status_on_mturk(client, mturk_assignment_id) == "Rejected"

    request_once(
        client=client,
        environment=record.hit.environment,
        key=f"reject:{mturk_assignment_id}",
        operation="reject_assignment",
        params={"AssignmentId": mturk_assignment_id, "RequesterFeedback": reason[:1024]},
        already_done=applied,
    )
    with transaction.atomic():
        record.status = AssignmentRecord.Status.REJECTED
        record.save(update_fields=["status", "synced_at"])
        Assignment.objects.filter(mturk_assignment_id=mturk_assignment_id).update(
            status=Assignment.Status.REJECTED
        )
    return record
