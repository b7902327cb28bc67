"""Writes of the outbox: enqueue in the caller's transaction, publish after commit, sweep what
is still pending, mark done on a consumer's success (see the package docstring)."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import uuid

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import OutboxEntry

logger = logging.getLogger(__name__)

# One quick retry on a broken broker connection, then the entry waits for the sweep: a request
# must not hang on a broker that is down.
_PUBLISH_RETRY = {
    "max_retries": 1,
    "interval_start": 0.1,
    "interval_step": 0.2,
    "interval_max": 0.2,
}


class OutboxKeyConflict(ValueError):
    """The key is already held by an entry for another task or other arguments."""


def outbox_enqueue(*, task: str, args: list, key: str) -> OutboxEntry:
    """Record that ``task(*args)`` must run; published once the caller's transaction commits.

    Parameters
    ----------
    task : str
        The Celery task's registered name (``mturk.tasks.mturk_participation_grant``); routed
        to its queue by ``CELERY_TASK_ROUTES`` like any other.
    args : list
        JSON-serialisable positional arguments (ids, STYLE habit 5).
    key : str
        Idempotency key of the effect, at most 200 characters: a second enqueue with the same
        key, task and arguments returns the first entry and publishes nothing more.

    Raises
    ------
    OutboxKeyConflict
        ``key`` is held by an entry for another task or other arguments.
    """
    if not task or not key or len(key) > 200:
        raise ValueError(f"outbox: task and a key of 1-200 characters are needed, got {key!r}")
    entry, created = OutboxEntry.objects.get_or_create(
        key=key, defaults={"task": task, "args": list(args), "task_id": uuid.uuid4()}
    )
    if not created and (entry.task != task or entry.args != list(args)):
        raise OutboxKeyConflict(
            f"outbox key {key!r} already holds {entry.task}{tuple(entry.args)}, not {task}{tuple(args)}"
        )
    if created:
        entry_id = entry.pk
        transaction.on_commit(lambda: outbox_publish(entry_id=entry_id))
    return entry


def outbox_publish(*, entry_id: int) -> bool:
    """Send the entry's task to the broker (or run it in-process where no broker is configured);
    True when it was handed over. Never raises for a broker that is down or a failing eager
    run: the error is kept on the entry and the sweep tries again."""
    entry = OutboxEntry.objects.filter(pk=entry_id, done_at__isnull=True).first()
    if entry is None:
        return False
    app = current_app
    try:
        if app.conf.task_always_eager:
            # Tasks register on import; the web process has not imported every tasks module.
            importlib.import_module(entry.task.rsplit(".", 1)[0])
            app.tasks[entry.task].apply(args=entry.args, task_id=str(entry.task_id), throw=True)
        else:
            app.send_task(
                entry.task,
                args=entry.args,
                task_id=str(entry.task_id),
                retry=True,
                retry_policy=_PUBLISH_RETRY,
            )
    except Exception as exc:  # a broker outage surfaces as kombu, redis or socket errors alike
        logger.warning("outbox entry %s (%s) not published: %r", entry.key, entry.task, exc)
        OutboxEntry.objects.filter(pk=entry.pk).update(last_error=repr(exc)[:2000])
        return False
    OutboxEntry.objects.filter(pk=entry.pk).update(
        published_at=timezone.now(), publish_count=F("publish_count") + 1, last_error=""
    )
    return True


def outbox_sweep(*, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Publish again up to ``limit`` pending entries never published, or last published more
    than ``OUTBOX_REPUBLISH_SECONDS`` ago (a message lost with a broker restart, or a consumer
    that died); returns how many were handed to the broker."""
    now = now or timezone.now()
    stale = now - dt.timedelta(seconds=settings.OUTBOX_REPUBLISH_SECONDS)
    ids = list(
        OutboxEntry.objects.filter(done_at__isnull=True)
        .filter(Q(published_at__isnull=True) | Q(published_at__lt=stale))
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    return sum(outbox_publish(entry_id=entry_id) for entry_id in ids)


def outbox_mark_done_on_success(sender=None, **kwargs) -> None:
    """``task_success`` receiver: the entry whose task id the finished task carried is done."""
    request = getattr(sender, "request", None)
    task_id = getattr(request, "id", None)
    try:
        parsed = uuid.UUID(str(task_id))
    except ValueError:
        return
    OutboxEntry.objects.filter(task_id=parsed, done_at__isnull=True).update(done_at=timezone.now())
