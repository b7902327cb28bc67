"""The load benchmark's limit: the production settings and URLs plus one view that answers a
constant JSON body, served by the same gunicorn, middleware and database connection settings.

``DJANGO_SETTINGS_MODULE=studyplatform.rehearsal.limit`` (``benchmarks/load.py`` sets it).
"""

from django.http import JsonResponse
from django.urls import include, path

from studyplatform.settings.production import *  # noqa: F403

ROOT_URLCONF = "studyplatform.rehearsal.limit"
_CONSTANT = {"status": "ok", "stage": "task", "found": 0}


def constant(request):
    """The cheapest Django answer: no database, no template."""
    return JsonResponse(_CONSTANT)


urlpatterns = [
    path("bench/constant", constant),
    path("", include("studyplatform.urls")),
]
