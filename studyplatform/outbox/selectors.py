"""Reads of the outbox."""

from __future__ import annotations

from django.db.models import Count, Q

from .models import OutboxEntry


def outbox_counts() -> dict[str, int]:
    """``{"pending": n, "done": n, "republished": n}`` over every entry; ``republished``
    counts entries published more than once (after an outage or a lost message)."""
    return OutboxEntry.objects.aggregate(
        pending=Count("id", filter=Q(done_at__isnull=True)),
        done=Count("id", filter=Q(done_at__isnull=False)),
        republished=Count("id", filter=Q(publish_count__gt=1)),
    )
