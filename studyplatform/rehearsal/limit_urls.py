"""The production URLs plus ``bench/constant``: the cheapest Django answer (no database, no
template), the limit ``benchmarks/load.py`` sets our endpoints beside."""

from django.http import JsonResponse
from django.urls import include, path

_CONSTANT = {"status": "ok", "stage": "task", "found": 0}


def constant(request):
    return JsonResponse(_CONSTANT)


urlpatterns = [
    path("bench/constant", constant),
    path("", include("studyplatform.urls")),
]
