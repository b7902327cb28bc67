"""MTurk tasks (``default`` queue): take ids, re-fetch, call one service (STYLE habit 5).

Syncing is idempotent (a second sync changes nothing; the qualifications it grants are recorded
once), so it uses ``acks_late``; only MTurk's throttling and connection failures are retried, with
exponential backoff.
"""

from __future__ import annotations

from celery import shared_task

from mturk.client import MTurkThrottled, MTurkUnreachable

TRANSIENT = (MTurkThrottled, MTurkUnreachable)


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    max_retries=3,
)
def mturk_sync_study(study_id: int) -> dict:
    """Sync one study's assignments; returns the report as a dict."""
    from dataclasses import asdict

    from mturk.services import assignments_sync, study_client
    from studyplatform.studies.models import Study

    study = Study.objects.get(id=study_id)
    return asdict(assignments_sync(study=study, client=study_client(study=study)))


@shared_task
def mturk_sync_live() -> int:
    """Beat entry: queue a sync of every live study with published HITs; returns how many."""
    from mturk.selectors import studies_to_sync

    ids = list(studies_to_sync().values_list("id", flat=True))
    for study_id in ids:
        mturk_sync_study.delay(study_id)
    return len(ids)
