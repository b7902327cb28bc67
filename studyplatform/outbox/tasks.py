"""Beat's sweep of the outbox (``default`` queue)."""

from celery import shared_task


@shared_task(ignore_result=True)
def outbox_sweep() -> int:
    """Publish the pending entries again; returns how many were handed to the broker."""
    from .services import outbox_sweep as sweep

    return sweep()
