"""Celery tasks of the explain app: take ids, re-fetch, call one service.

``saliency_precompute_chunk`` runs on the ``gpu`` queue (one forward pass per mask);
``saliency_overlays_render`` is CPU work on ``default`` (``CELERY_TASK_ROUTES``).
"""

from celery import shared_task


@shared_task(
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=4 * 60 * 60,
    time_limit=4 * 60 * 60 + 300,
)
def saliency_precompute_chunk(
    feature_set_id: int, query_id: int, result_ids: list[int], method_config: dict
) -> int:
    """Maps of ``result_ids`` for one query; idempotent (existing maps are skipped)."""
    from retrieval.models import FeatureSet, Image

    from .services import saliency_maps_compute

    results = Image.objects.select_related("directory").in_bulk(result_ids)
    missing = sorted(set(result_ids) - set(results))
    if missing:
        raise ValueError(f"images {missing} do not exist")
    rows = saliency_maps_compute(
        feature_set=FeatureSet.objects.get(pk=feature_set_id),
        query=Image.objects.select_related("directory").get(pk=query_id),
        results=[results[i] for i in result_ids],
        method_config=method_config,
    )
    return len(rows)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def saliency_overlays_render(feature_set_id: int, config_key: str) -> int:
    """Render the overlays of one (feature set, method config) group; idempotent."""
    from retrieval.models import FeatureSet

    from .services import saliency_overlays_render as render

    return render(feature_set=FeatureSet.objects.get(pk=feature_set_id), config_key=config_key)
