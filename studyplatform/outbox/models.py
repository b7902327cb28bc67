from django.db import models
from django.db.models import Q


class OutboxEntry(models.Model):
    """One task that must run: its name, JSON arguments and an idempotency key.

    ``key`` names the effect (``participation-grant:<assignment id>``): enqueueing the same key
    twice keeps one entry. ``task_id`` is the Celery id of every message published for it, so
    a consumer's success finds the entry however many copies were published.
    """

    key = models.CharField(max_length=200, unique=True)
    task = models.CharField(max_length=200)
    args = models.JSONField(default=list, blank=True)
    task_id = models.UUIDField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    publish_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    done_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "outbox entries"
        constraints = [
            models.CheckConstraint(
                condition=Q(done_at__isnull=True) | Q(done_at__gte=models.F("created_at")),
                name="outbox_done_after_created",
            ),
        ]
        indexes = [
            models.Index(
                fields=["published_at"], condition=Q(done_at__isnull=True), name="outbox_pending"
            )
        ]

    def __str__(self) -> str:
        state = "done" if self.done_at else "pending"
        return f"{self.key} ({self.task}, {state})"
