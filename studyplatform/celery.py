"""The Celery application.

Configuration comes from Django settings (the ``CELERY_`` names in ``settings/base.py``): two
queues, ``gpu`` for feature extraction, saliency and re-ranking and ``default`` for everything else,
routed by task module. Start workers with ``docker/start/worker`` and ``docker/start/gpu-worker``.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyplatform.settings.dev")

app = Celery("studyplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
