"""Celery tasks of the explain app: take ids, re-fetch, call one service (STYLE habits 5-7).

Each task is named after the service it calls. ``saliency_precompute_chunk`` (one result image,
every query needing it: the chunk of a study's precompute) and ``saliency_precompute_study``
(plan and queue a study's chunks) run on the ``gpu`` queue; ``saliency_overlays_render`` is CPU
work on ``default`` (``CELERY_TASK_ROUTES``).
The compute tasks are idempotent (existing maps are skipped, each map is committed when done),
hence ``acks_late`` with ``reject_on_worker_lost``: a worker killed mid-chunk leaves the message
unacknowledged, it is delivered again, and the new run computes only what is missing. None of
them waits on another task; a study's graph is a chord built by
``explain.services.saliency_precompute_study``.
"""

from celery import shared_task

_GPU_LIMITS = {"soft_time_limit": 4 * 60 * 60, "time_limit": 4 * 60 * 60 + 300}


@shared_task(acks_late=True, reject_on_worker_lost=True, **_GPU_LIMITS)
def saliency_precompute_chunk(
    feature_set_id: int, result_id: int, query_ids: list[int], method_config: dict
) -> int:
    """Maps of one result image for each of ``query_ids``; returns how many were computed."""
    from retrieval.models import FeatureSet, Image

    from .services import saliency_precompute_chunk as run

    images = Image.objects.select_related("directory").in_bulk([result_id, *query_ids])
    missing = sorted({result_id, *query_ids} - set(images))
    if missing:
        raise ValueError(f"images {missing} do not exist")
    return run(
        feature_set=FeatureSet.objects.get(pk=feature_set_id),
        result=images[result_id],
        queries=[images[q] for q in query_ids],
        method_config=method_config,
    )


@shared_task(acks_late=True, reject_on_worker_lost=True)
def saliency_overlays_render(
    feature_set_id: int, config_key: str, style: dict | None = None
) -> int:
    """Draw the overlays of one (feature set, method config) group in ``style`` (an
    ``OverlayStyle`` config; None: the default); idempotent."""
    from retrieval.models import FeatureSet

    from .services import saliency_overlays_render as render

    return render(
        feature_set=FeatureSet.objects.get(pk=feature_set_id), config_key=config_key, style=style
    )


@shared_task(acks_late=True, reject_on_worker_lost=True)
def saliency_precompute_study(study_id: int) -> dict:
    """Plan a study's missing maps and queue their chunks (the admin's action; the plan needs
    the backbone's normalisation, so it runs here, not in the web process); idempotent."""
    from dataclasses import asdict

    from studyplatform.studies.models import Study

    from .services import saliency_precompute_study as run

    return asdict(run(study=Study.objects.get(pk=study_id)))
