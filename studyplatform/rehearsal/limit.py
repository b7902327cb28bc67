"""The load benchmark's limit: the production settings, with the production URLs plus one view
that answers a constant JSON body (``limit_urls``), served by the same gunicorn, middleware and
database settings.

``DJANGO_SETTINGS_MODULE=studyplatform.rehearsal.limit`` (``benchmarks/load.py`` sets it).
"""

from studyplatform.settings.production import *  # noqa: F403

ROOT_URLCONF = "studyplatform.rehearsal.limit_urls"
