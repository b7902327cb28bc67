"""Celery tasks of the retrieval app: take ids, re-fetch, call one service.

``archive_*`` tasks run on the ``default`` queue; the others (features, re-ranking) on ``gpu``
(``CELERY_TASK_ROUTES`` in settings).
"""

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def archive_statistics_refresh(archive_id: int) -> int:
    """Recompute the per-class statistics of an archive; idempotent. Returns categories updated."""
    from .models import Archive
    from .services import archive_statistics_refresh as refresh

    return refresh(archive=Archive.objects.get(pk=archive_id))
