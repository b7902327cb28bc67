"""Bonuses (at most one per worker, assignment and reason) and worker notifications."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from mturk.client import MTurkError, MTurkServiceError, client_environment, mturk_call
from mturk.models import AssignmentRecord, Bonus
from mturk.services.calls import is_duplicate, new_token
from mturk.services.hit_settings import amount_parse

NOTIFY_BATCH = 100  # NotifyWorkers takes at most 100 worker ids per call


def bonus_send(
    *, worker_id: str, mturk_assignment_id: str, amount: Any, reason: str, client: Any
) -> Bonus:
    """Pay ``amount`` dollars to ``worker_id`` for ``mturk_assignment_id``, once.

    The Bonus row (and its ``UniqueRequestToken``) is saved before SendBonus; calling again for
    the same (worker, assignment, reason) returns the row without paying, or, when the first
    call's answer was lost, repeats it with the same token, which MTurk refuses as a duplicate.
    A different amount for the same key is an error.
    """
    value = amount_parse(amount, "bonus amount")
    reason = (reason or "").strip()
    if not reason:
        raise MTurkError("A bonus needs a reason; the worker sees it.")
    environment = client_environment(client)
    record = AssignmentRecord.objects.filter(assignment_id=mturk_assignment_id).first()
    if record is None or record.worker_id != worker_id:
        raise MTurkError(
            f"Worker {worker_id} has no synced assignment {mturk_assignment_id}: run `mturk sync` "
            "first; a bonus is paid only for an assignment of that worker."
        )
    try:
        with transaction.atomic():
            bonus, _ = Bonus.objects.get_or_create(
                environment=environment,
                worker_id=worker_id,
                assignment_id=mturk_assignment_id,
                reason=reason,
                defaults={
                    "study_id": record.hit.study_id,
                    "amount": value,
                    "unique_request_token": new_token(),
                },
            )
    except IntegrityError as exc:  # pragma: no cover - a concurrent twin won the race
        raise MTurkError(f"A bonus for {worker_id}/{mturk_assignment_id} is being sent.") from exc
    if bonus.amount != value:
        raise MTurkError(
            f"A bonus of ${bonus.amount} for this worker, assignment and reason already exists "
            f"({bonus.status}); refusing to send ${value}."
        )
    if bonus.status == Bonus.Status.SENT:
        return bonus
    try:
        mturk_call(
            client,
            "send_bonus",
            WorkerId=worker_id,
            BonusAmount=f"{Decimal(bonus.amount):.2f}",
            AssignmentId=mturk_assignment_id,
            Reason=reason,
            UniqueRequestToken=bonus.unique_request_token,
        )
    except MTurkServiceError as exc:
        if not is_duplicate(exc):
            raise
    bonus.status = Bonus.Status.SENT
    bonus.sent_at = timezone.now()
    bonus.save(update_fields=["status", "sent_at"])
    return bonus


def workers_notify(*, worker_ids: list[str], subject: str, message: str, client: Any) -> list[dict]:
    """Send a message to workers, 100 per call; returns MTurk's failure statuses."""
    subject, message = (subject or "").strip(), (message or "").strip()
    if not subject or not message:
        raise MTurkError("A notification needs a subject and a message.")
    if len(subject) > 200 or len(message) > 4096:
        raise MTurkError("The subject is at most 200 characters and the message 4096.")
    ids = list(dict.fromkeys(w.strip() for w in worker_ids if w.strip()))
    failures: list[dict] = []
    for start in range(0, len(ids), NOTIFY_BATCH):
        response = mturk_call(
            client,
            "notify_workers",
            Subject=subject,
            MessageText=message,
            WorkerIds=ids[start : start + NOTIFY_BATCH],
        )
        failures.extend(response.get("NotifyWorkersFailureStatuses", []))
    return failures
