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


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=4 * 60 * 60,
    time_limit=4 * 60 * 60 + 300,
)
def feature_set_extract(self, feature_set_id: int) -> dict:
    """Extract (or resume) a feature set on the ``gpu`` queue; progress in the task state.

    Idempotent and resumable: a redelivered message continues at the first unfinished row.
    """
    from .models import FeatureSet
    from .services.features import feature_set_extract as run

    def progress(done: int, total: int) -> None:
        if not self.request.is_eager:
            self.update_state(state="PROGRESS", meta={"done": done, "total": total})

    feature_set = run(feature_set=FeatureSet.objects.get(pk=feature_set_id), progress=progress)
    return {"rows": feature_set.n_rows, "failed": len(feature_set.failed_images)}
