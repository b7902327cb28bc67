"""Mutating MTurk calls made at most once: the intent is saved (with its token) before the call.

A call whose answer was lost is recognised on the next attempt: the same ``UniqueRequestToken``
is sent again and MTurk's "already exists" error counts as success, or ``already_done`` (a check
of the error, e.g. "approve" on an assignment MTurk reports Approved) says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from mturk.client import MTurkServiceError, mturk_call
from mturk.models import RequestRecord

DUPLICATE_CODES = frozenset(
    {"AWS.MechanicalTurk.HitAlreadyExists", "AWS.MechanicalTurk.DuplicateRequest"}
)


def new_token() -> str:
    """A fresh ``UniqueRequestToken`` (1 to 64 characters)."""
    return uuid.uuid4().hex


def is_duplicate(error: MTurkServiceError) -> bool:
    """MTurk refused a repeated ``UniqueRequestToken``: the first call was applied."""
    return error.turk_code in DUPLICATE_CODES or (
        "already exists" in error.message and "UniqueRequestToken" in error.message
    )


def request_once(
    *,
    client: Any,
    environment: str,
    key: str,
    operation: str,
    params: dict,
    with_token: bool = False,
    already_done: Callable[[MTurkServiceError], bool] = is_duplicate,
) -> tuple[RequestRecord, dict | None]:
    """Make the call recorded under ``key`` unless it is done; returns (record, response).

    ``response`` is ``None`` when the call had been made before (now or in an earlier run).
    A pending record is re-sent with its stored parameters and token, whatever ``params``
    says now, so a retry repeats exactly the request that may have been applied.
    """
    record, _ = RequestRecord.objects.get_or_create(
        environment=environment,
        key=key,
        defaults={"operation": operation, "params": params, "unique_request_token": new_token()},
    )
    if record.status == RequestRecord.Status.DONE:
        return record, None
    sent = dict(record.params)
    if with_token:
        sent["UniqueRequestToken"] = record.unique_request_token
    try:
        response = mturk_call(client, record.operation, **sent)
    except MTurkServiceError as exc:
        if not already_done(exc):
            record.error = str(exc)
            record.save(update_fields=["error", "updated_at"])
            raise
        response = None
    record.status = RequestRecord.Status.DONE
    record.error = ""
    record.save(update_fields=["status", "error", "updated_at"])
    return record, response
