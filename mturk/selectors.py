"""Reads of the MTurk records (no MTurk calls)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import QuerySet, Sum

from mturk.models import AssignmentRecord, Bonus, Hit
from mturk.services.hit_settings import fee
from studyplatform.studies.models import Study


def studies_to_sync() -> QuerySet[Study]:
    """Live studies with at least one published HIT."""
    return (
        Study.objects.filter(status=Study.Status.LIVE, hits__isnull=False)
        .exclude(hits__hit_id="")
        .distinct()
    )


def study_is_published(*, study: Any) -> bool:
    """True once at least one HIT of the study exists on MTurk (any environment)."""
    return Hit.objects.filter(study=study).exclude(hit_id="").exists()


def money_spent(*, study: Any, environment: str) -> dict[str, Decimal]:
    """Dollars paid or owed: approved rewards, bonuses sent, and MTurk's fees on both."""
    approved = AssignmentRecord.objects.filter(
        hit__study=study, hit__environment=environment, status=AssignmentRecord.Status.APPROVED
    ).count()
    reward = Decimal(str((study.mturk or {}).get("reward") or "0"))
    bonuses = Bonus.objects.filter(study=study, environment=environment, status=Bonus.Status.SENT)
    bonus_total = bonuses.aggregate(total=Sum("amount"))["total"] or Decimal("0")
    fees = (fee(reward) * approved if reward else Decimal("0")) + sum(
        (fee(b.amount) for b in bonuses), Decimal("0")
    )
    return {
        "approved_assignments": Decimal(approved),
        "rewards": reward * approved,
        "bonuses": bonus_total,
        "fees": fees,
        "total": reward * approved + bonus_total + fees,
    }
