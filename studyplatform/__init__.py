"""studyplatform: crowdsourced user studies of explainable image retrieval.

Importing the package loads the Celery app, so ``@shared_task`` functions bind to it.
"""

from .celery import app as celery_app

__all__ = ("celery_app",)
