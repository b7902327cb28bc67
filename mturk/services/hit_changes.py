"""Expiring a study's HITs and extending them (more assignments, more time).

Extensions keep every HIT under 10 assignments (MTurk refuses to take a HIT from fewer than 10
to 10 or more, and charges 40% from 10): existing HITs are filled up to 9, the rest go to new
HITs. Each addition is recorded with its ``UniqueRequestToken`` before the call.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from mturk.client import MTurkError, client_environment, mturk_call
from mturk.models import Hit, HitType, RequestRecord
from mturk.services.calls import new_token, request_once
from mturk.services.hit_settings import (
    MAX_ASSIGNMENTS_PER_HIT,
    batch_sizes,
    hit_settings_from_study,
)
from mturk.services.hits import external_question, hit_create, question_url


def hit_expire(*, study: Any, client: Any) -> int:
    """Expire every published HIT of the study at once; returns how many."""
    environment = client_environment(client)
    hits = Hit.objects.filter(environment=environment, study=study, expired=False).exclude(
        hit_id=""
    )
    past = timezone.now() - dt.timedelta(minutes=1)
    count = 0
    for hit in hits:
        # A time in the past expires the HIT immediately (MTurk's documented behaviour).
        mturk_call(client, "update_expiration_for_hit", HITId=hit.hit_id, ExpireAt=past)
        hit.expired = True
        hit.expires_at = past
        hit.save(update_fields=["expired", "expires_at"])
        count += 1
    return count


def hit_extend(
    *, study: Any, client: Any, assignments: int = 0, seconds: int = 0
) -> dict[str, int]:
    """Add ``assignments`` (filling HITs up to 9, then new HITs) and/or ``seconds`` of listing
    time to the unexpired HITs. Each addition is recorded before its call; a pending one from
    an earlier failed run is completed first and counts toward ``assignments``."""
    if assignments < 0 or seconds < 0 or (assignments == 0 and seconds == 0):
        raise MTurkError("hit_extend needs a positive number of assignments and/or seconds.")
    environment = client_environment(client)
    settings = hit_settings_from_study(study)
    added = 0
    for record in RequestRecord.objects.filter(
        environment=environment,
        key__startswith=f"extend:{study.pk}:",
        status=RequestRecord.Status.PENDING,
    ):
        added += _extend_apply(record=record, client=client)
    hits = list(
        Hit.objects.filter(environment=environment, study=study, expired=False)
        .exclude(hit_id="")
        .order_by("batch")
    )
    for hit in hits:
        room = MAX_ASSIGNMENTS_PER_HIT - hit.max_assignments
        n = min(room, assignments - added)
        if n <= 0:
            continue
        record, _ = request_once_plan(environment, study, hit, n)
        added += _extend_apply(record=record, client=client)
    leftover = assignments - added
    created = 0
    if leftover > 0:
        hit_type = HitType.objects.filter(environment=environment, study=study).latest("created_at")
        url = question_url(study=study, environment=environment)
        question = external_question(url=url, frame_height=settings.frame_height)
        next_batch = Hit.objects.filter(environment=environment, study=study).count()
        for size in batch_sizes(leftover):
            hit = Hit.objects.create(
                environment=environment,
                study=study,
                hit_type=hit_type,
                batch=next_batch,
                max_assignments=size,
                unique_request_token=new_token(),
                lifetime_seconds=max(settings.lifetime_seconds, seconds),
            )
            hit_create(hit=hit, client=client, question=question)
            next_batch += 1
            created += 1
    extended = 0
    if seconds:
        now = timezone.now()
        for hit in hits:
            start = max(hit.expires_at or now, now)
            new_expiry = start + dt.timedelta(seconds=seconds)
            mturk_call(client, "update_expiration_for_hit", HITId=hit.hit_id, ExpireAt=new_expiry)
            hit.expires_at = new_expiry
            hit.save(update_fields=["expires_at"])
            extended += 1
    return {
        "assignments_added": added + leftover,
        "hits_created": created,
        "hits_extended": extended,
    }


def request_once_plan(environment: str, study: Any, hit: Hit, n: int) -> tuple[RequestRecord, bool]:
    """Record the intent to add ``n`` assignments to ``hit`` (before any call)."""
    number = RequestRecord.objects.filter(
        environment=environment, key__startswith=f"extend:{study.pk}:{hit.hit_id}:"
    ).count()
    return RequestRecord.objects.get_or_create(
        environment=environment,
        key=f"extend:{study.pk}:{hit.hit_id}:{number}",
        defaults={
            "operation": "create_additional_assignments_for_hit",
            "params": {"HITId": hit.hit_id, "NumberOfAdditionalAssignments": n},
            "unique_request_token": new_token(),
        },
    )


def _extend_apply(*, record: RequestRecord, client: Any) -> int:
    """Send a recorded extension (once) and mirror it on the Hit row; returns assignments."""
    n = int(record.params["NumberOfAdditionalAssignments"])
    request_once(
        client=client,
        environment=record.environment,
        key=record.key,
        operation=record.operation,
        params=record.params,
        with_token=True,
    )
    hit = Hit.objects.get(hit_id=record.params["HITId"])
    hit.max_assignments += n
    hit.save(update_fields=["max_assignments"])
    return n
