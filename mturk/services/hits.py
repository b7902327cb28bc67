"""Publishing a study's HITs (expiring and extending them: ``hit_changes``).

A study needs ``task pairs x repetitions`` assignments, or the spec's ``hits`` (seed 001
section 4: each task pair done at least three times, each time by a different worker, 476 in
all). They are spread over HITs of at most
9 assignments each, because MTurk's commission doubles (20% -> 40%) from 10. Each HIT row, with
its ``UniqueRequestToken``, is saved before the create call, so publishing again after any
failure finishes the launch without a second copy of any HIT.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from django.conf import settings as django_settings
from django.urls import NoReverseMatch, reverse

from mturk.client import (
    MTurkConfigError,
    MTurkError,
    MTurkServiceError,
    client_environment,
    mturk_call,
)
from mturk.models import Hit, HitType
from mturk.services.calls import is_duplicate, new_token
from mturk.services.hit_settings import (
    CostEstimate,
    HitSettings,
    batch_sizes,
    cost_estimate,
    hit_settings_from_study,
)
from mturk.services.qualifications import participation_qualifications_ensure

EXTERNAL_QUESTION_SCHEMA = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/"
    "ExternalQuestion.xsd"
)


class PublishNotConfirmed(MTurkError):
    """Publishing needs ``confirm=True`` once the plan (cost, balance) has been seen."""

    def __init__(self, plan: PublishPlan) -> None:
        self.plan = plan
        super().__init__("Publishing not confirmed:\n" + "\n".join(plan.lines()))


@dataclass(frozen=True)
class PublishPlan:
    """What publishing would do: the HITs still to create, their cost and the balance."""

    environment: str
    question_url: str
    estimate: CostEstimate
    already_published: int
    balance: Decimal

    def lines(self) -> list[str]:
        return [
            f"environment  {self.environment}",
            f"HIT page     {self.question_url}",
            *self.estimate.lines(),
            f"already published: {self.already_published} HITs",
            f"account balance ${self.balance}",
        ]


@dataclass(frozen=True)
class PublishResult:
    plan: PublishPlan
    hits: list[Hit]
    created: int


def question_url(*, study: Any, environment: str) -> str:
    """The HTTPS URL of the study's HIT page (``PUBLIC_BASE_URL`` + the "hit" URL); http only
    for the local endpoint."""
    base = (getattr(django_settings, "PUBLIC_BASE_URL", "") or "").rstrip("/")
    if not base:
        raise MTurkConfigError(
            "PUBLIC_BASE_URL is not set: MTurk needs the public address of the HIT pages, "
            "e.g. https://studies.example.org."
        )
    if not base.startswith("https://") and not (
        environment == "local" and base.startswith("http://")
    ):
        raise MTurkConfigError(
            f"PUBLIC_BASE_URL {base!r} must start with https:// (MTurk frames only HTTPS pages; "
            "http:// is allowed for the local endpoint)."
        )
    try:
        path = reverse("hit:page", kwargs={"study": study.slug})
    except NoReverseMatch:
        path = f"/hit/{study.slug}/"
    return base + path


def external_question(*, url: str, frame_height: int) -> str:
    """MTurk's ExternalQuestion document framing ``url``."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<ExternalQuestion xmlns="{EXTERNAL_QUESTION_SCHEMA}">'
        f"<ExternalURL>{escape(url)}</ExternalURL>"
        f"<FrameHeight>{int(frame_height)}</FrameHeight>"
        "</ExternalQuestion>"
    )


def assignments_needed(*, study: Any) -> int:
    """Distinct workers over all task pairs: repetitions per pair, or the spec's ``hits``."""
    from studyplatform.studies.services.assignments import study_pair_capacities

    return sum(study_pair_capacities(study=study).values())


def account_balance(*, client: Any) -> Decimal:
    return Decimal(mturk_call(client, "get_account_balance")["AvailableBalance"])


def hit_publish_plan(*, study: Any, client: Any) -> PublishPlan:
    """Check the settings and compute the plan; the only MTurk call is GetAccountBalance."""
    environment = client_environment(client)
    settings = hit_settings_from_study(study)
    if environment == "production" and not settings.production:
        raise MTurkConfigError(f"Study {study.slug} does not allow production (mturk.production).")
    url = question_url(study=study, environment=environment)
    total = assignments_needed(study=study)
    if total == 0:
        raise MTurkError(f"Study {study.slug} has no task pairs: generate them before publishing.")
    published = Hit.objects.filter(environment=environment, study=study).exclude(hit_id="")
    done = sum(h.max_assignments for h in published)
    remaining = max(total - done, 0)
    return PublishPlan(
        environment=environment,
        question_url=url,
        estimate=cost_estimate(settings=settings, assignments=remaining),
        already_published=published.count(),
        balance=account_balance(client=client),
    )


def _hit_type_ensure(
    *, study: Any, client: Any, settings: HitSettings, environment: str
) -> HitType:
    participated = participation_qualifications_ensure(
        client=client, study=study, settings=settings
    )
    params = {
        "AutoApprovalDelayInSeconds": settings.auto_approval_delay_seconds,
        "AssignmentDurationInSeconds": settings.assignment_duration_seconds,
        "Reward": f"{settings.reward:.2f}",
        "Title": settings.title,
        "Keywords": settings.keywords,
        "Description": settings.description,
        "QualificationRequirements": settings.requirements(
            environment=environment, participated_ids=participated
        ),
    }
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    existing = HitType.objects.filter(
        environment=environment, study=study, params_sha256=digest
    ).first()
    if existing:
        return existing
    # CreateHITType is idempotent on MTurk: the same properties give the same HIT type id.
    response = mturk_call(client, "create_hit_type", **params)
    return HitType.objects.create(
        environment=environment,
        study=study,
        hit_type_id=response["HITTypeId"],
        params_sha256=digest,
        params=params,
    )


def _hit_id_from_duplicate(error: MTurkServiceError) -> str:
    match = re.search(r"HIT with ID ([A-Z0-9]+)", error.message) or re.search(
        r"\b([A-Z0-9]{20,64})\b", error.message
    )
    return match.group(1) if match else ""


def hit_create(*, hit: Hit, client: Any, question: str) -> None:
    """Create ``hit`` on MTurk with its saved token; a duplicate-token error gives the id."""
    params = {
        "HITTypeId": hit.hit_type.hit_type_id,
        "MaxAssignments": hit.max_assignments,
        "LifetimeInSeconds": hit.lifetime_seconds,
        "Question": question,
        "RequesterAnnotation": f"{hit.study.slug} batch {hit.batch}"[:255],
        "UniqueRequestToken": hit.unique_request_token,
    }
    try:
        response = mturk_call(client, "create_hit_with_hit_type", **params)
        hit.hit_id = response["HIT"]["HITId"]
        expiration = response["HIT"].get("Expiration")
    except MTurkServiceError as exc:
        if not is_duplicate(exc):
            raise
        hit.hit_id = _hit_id_from_duplicate(exc)
        if not hit.hit_id:
            raise
        expiration = mturk_call(client, "get_hit", HITId=hit.hit_id)["HIT"].get("Expiration")
    hit.expires_at = expiration
    hit.save(update_fields=["hit_id", "expires_at"])


def hit_publish(*, study: Any, client: Any, confirm: bool) -> PublishResult:
    """Publish the study's HITs (or finish an interrupted launch).

    Raises :class:`PublishNotConfirmed` (carrying the plan) without ``confirm``, and
    :class:`MTurkError` when the balance does not cover the estimate; nothing is created then.
    """
    plan = hit_publish_plan(study=study, client=client)
    if not confirm:
        raise PublishNotConfirmed(plan)
    if plan.balance < plan.estimate.total:
        raise MTurkError(
            f"Account balance ${plan.balance} does not cover the estimate "
            f"${plan.estimate.total}; nothing was published."
        )
    settings = hit_settings_from_study(study)
    environment = plan.environment
    hit_type = _hit_type_ensure(
        study=study, client=client, settings=settings, environment=environment
    )
    question = external_question(url=plan.question_url, frame_height=settings.frame_height)
    # Rows for the remaining assignments are planned first (tokens fixed), then created.
    pending = list(Hit.objects.filter(environment=environment, study=study, hit_id=""))
    planned = sum(
        h.max_assignments for h in Hit.objects.filter(environment=environment, study=study)
    )
    next_batch = Hit.objects.filter(environment=environment, study=study).count()
    for size in batch_sizes(max(assignments_needed(study=study) - planned, 0)):
        pending.append(
            Hit.objects.create(
                environment=environment,
                study=study,
                hit_type=hit_type,
                batch=next_batch,
                max_assignments=size,
                unique_request_token=new_token(),
                lifetime_seconds=settings.lifetime_seconds,
            )
        )
        next_batch += 1
    for hit in pending:
        hit_create(hit=hit, client=client, question=question)
    hits = list(Hit.objects.filter(environment=environment, study=study).order_by("batch"))
    return PublishResult(plan=plan, hits=hits, created=len(pending))
