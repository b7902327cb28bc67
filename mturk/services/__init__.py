"""MTurk services: the only code that calls the boto3 client (STYLE habit 10).

Split by sub-domain: ``hit_settings`` (the study's HIT settings and the money arithmetic, no
calls), ``calls`` (calls made at most once), ``qualifications``, ``hits`` (publish),
``hit_changes`` (expire, extend), ``assignments`` (sync, approve, reject), ``payments`` (bonuses, notifications).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from mturk.client import mturk_client
from mturk.models import Hit
from mturk.services.assignments import (
    SyncReport,
    assignment_approve,
    assignment_reject,
    assignments_sync,
)
from mturk.services.hit_changes import hit_expire, hit_extend
from mturk.services.hit_settings import MTurkSettingsError, hit_settings_from_study
from mturk.services.hits import (
    PublishNotConfirmed,
    PublishPlan,
    PublishResult,
    account_balance,
    hit_publish,
    hit_publish_plan,
)
from mturk.services.payments import bonus_send, workers_notify
from mturk.services.qualifications import participation_grant


def study_client(*, study: Any, environment: str | None = None, endpoint_url: str | None = None):
    """The client for ``study``: ``environment``, else the one its HITs were published to,
    else ``MTURK_ENVIRONMENT``; production only when the study allows it."""
    if environment is None:
        latest = Hit.objects.filter(study=study).order_by("-created_at").first()
        environment = (
            latest.environment if latest else getattr(settings, "MTURK_ENVIRONMENT", "sandbox")
        )
    allows = (study.mturk or {}).get("production") is True
    return mturk_client(
        environment=environment, endpoint_url=endpoint_url, study_allows_production=allows
    )


__all__ = [
    "MTurkSettingsError",
    "PublishNotConfirmed",
    "PublishPlan",
    "PublishResult",
    "SyncReport",
    "account_balance",
    "assignment_approve",
    "assignment_reject",
    "assignments_sync",
    "bonus_send",
    "hit_expire",
    "hit_extend",
    "hit_publish",
    "hit_publish_plan",
    "hit_settings_from_study",
    "participation_grant",
    "study_client",
    "workers_notify",
]
