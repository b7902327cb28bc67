"""Celery tasks of the study app: take ids, re-fetch, call one service (STYLE habits 5-7).

``search_round_compute`` runs on the ``gpu`` queue (``CELERY_TASK_ROUTES``): one refine round,
ranked by IQR and given its missing saliency maps. It is idempotent (a ready round is left as
it is, a round is computed under a lock), hence ``acks_late`` with ``reject_on_worker_lost``: a
worker killed mid-round leaves the message to be delivered again, and the new run computes it.
"""

from celery import shared_task


@shared_task(
    acks_late=True, reject_on_worker_lost=True, soft_time_limit=15 * 60, time_limit=16 * 60
)
def search_round_compute(round_id: int) -> int:
    """Compute refine round ``round_id``; returns the maps computed on demand."""
    from .services.rounds import search_round_compute as run

    return run(round_id=round_id).maps_on_demand
