"""What the platform knows about its MTurk side: HIT types and HITs per study, the
"participated" qualification types, MTurk's view of each assignment, bonuses, and a record of
every mutating call saved *before* the call, so that a retry after a lost response reuses the
same ``UniqueRequestToken`` (or is recognised as done) instead of acting twice.

Rows are per ``environment`` (sandbox, production, local): a rehearsal on the local endpoint or
the sandbox never shadows the real launch.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Environment(models.TextChoices):
    SANDBOX = "sandbox", "sandbox"
    PRODUCTION = "production", "production"
    LOCAL = "local", "local endpoint"


class QualificationType(models.Model):
    """A "participated" qualification: granted to each worker who accepts one of the study's
    HITs and required as DoesNotExist by its HIT type. ``study`` empty: the cross-study one."""

    environment = models.CharField(max_length=10, choices=Environment.choices)
    study = models.ForeignKey(
        "studies.Study",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="mturk_qualification_types",
    )
    name = models.CharField(max_length=200)
    qualification_type_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "study"], name="mturk_qualification_per_study_once"
            ),
            models.UniqueConstraint(
                fields=["environment"],
                condition=Q(study__isnull=True),
                name="mturk_qualification_cross_study_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.environment})"


class HitType(models.Model):
    """A HIT type created for a study (one per distinct set of properties)."""

    environment = models.CharField(max_length=10, choices=Environment.choices)
    study = models.ForeignKey(
        "studies.Study", on_delete=models.CASCADE, related_name="mturk_hit_types"
    )
    hit_type_id = models.CharField(max_length=64)
    params_sha256 = models.CharField(max_length=64, help_text="SHA-256 of the request sent.")
    params = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "study", "params_sha256"], name="mturk_hit_type_once"
            ),
        ]

    def __str__(self) -> str:
        return self.hit_type_id


class Hit(models.Model):
    """One published HIT: batch ``batch`` of the study, ``max_assignments`` < 10 (MTurk's fee
    doubles from 10). ``unique_request_token`` is saved before the create call; ``hit_id``
    stays empty until MTurk's answer (or its HitAlreadyExists error) gives it."""

    environment = models.CharField(max_length=10, choices=Environment.choices)
    study = models.ForeignKey("studies.Study", on_delete=models.CASCADE, related_name="hits")
    hit_type = models.ForeignKey(HitType, on_delete=models.PROTECT, related_name="hits")
    batch = models.PositiveIntegerField()
    max_assignments = models.PositiveSmallIntegerField()
    unique_request_token = models.CharField(max_length=64, unique=True)
    hit_id = models.CharField(max_length=64, blank=True)
    lifetime_seconds = models.PositiveIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    expired = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "environment", "batch"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "study", "batch"], name="mturk_hit_batch_once"
            ),
            models.UniqueConstraint(
                fields=["hit_id"], condition=~Q(hit_id=""), name="mturk_hit_id_once"
            ),
            models.CheckConstraint(
                condition=Q(max_assignments__gte=1) & Q(max_assignments__lte=9),
                name="mturk_hit_under_10_assignments",
            ),
        ]

    def __str__(self) -> str:
        return self.hit_id or f"{self.study_id} batch {self.batch} (pending)"


class AssignmentRecord(models.Model):
    """MTurk's view of an assignment, as last listed by ``assignments_sync`` (or changed by our
    approve/reject calls)."""

    class Status(models.TextChoices):
        SUBMITTED = "Submitted"
        APPROVED = "Approved"
        REJECTED = "Rejected"

    hit = models.ForeignKey(Hit, on_delete=models.CASCADE, related_name="assignment_records")
    assignment_id = models.CharField(max_length=64, unique=True)
    worker_id = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=Status.choices)
    submit_time = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["hit", "assignment_id"]

    def __str__(self) -> str:
        return f"{self.assignment_id} ({self.status})"


class Bonus(models.Model):
    """A bonus, at most one per (worker, assignment, reason): the token is fixed on creation and
    the row is saved before SendBonus is called."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"

    environment = models.CharField(max_length=10, choices=Environment.choices)
    study = models.ForeignKey(
        "studies.Study", on_delete=models.PROTECT, related_name="mturk_bonuses"
    )
    worker_id = models.CharField(max_length=64)
    assignment_id = models.CharField(max_length=64)
    reason = models.CharField(max_length=1000)
    amount = models.DecimalField(max_digits=8, decimal_places=2)
    unique_request_token = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "bonuses"
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "worker_id", "assignment_id", "reason"],
                name="mturk_bonus_once",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="mturk_bonus_amount_gt_0"),
        ]

    def __str__(self) -> str:
        return f"${self.amount} to {self.worker_id} ({self.status})"


class RequestRecord(models.Model):
    """A mutating MTurk call, saved before it is made under the natural key ``key`` (e.g.
    ``extend:<hit>:<n>``); ``done`` once MTurk's answer (or proof it was applied) arrives."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"

    environment = models.CharField(max_length=10, choices=Environment.choices)
    key = models.CharField(max_length=200)
    operation = models.CharField(max_length=60)
    unique_request_token = models.CharField(max_length=64)
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "key"], name="mturk_request_once"),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.key} ({self.status})"
