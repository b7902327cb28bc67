"""Results page, figures, downloads and the results API of a study.

Included by the project's URLconf with ``path("", include("analysis.urls"))``.
"""

from django.urls import path

from . import apis, views

app_name = "analysis"

urlpatterns = [
    path("analysis/<slug:study>/", views.results, name="results"),
    path(
        "analysis/<slug:study>/figures/<str:name>.<str:fmt>",
        views.figure,
        name="figure",
    ),
    path("analysis/<slug:study>/download/<str:fmt>/", views.download, name="download"),
    path("api/analysis/<slug:study>/", apis.StudyResultsApi.as_view(), name="api-results"),
    path(
        "api/analysis/<slug:study>/<str:table>/",
        apis.StudyTableApi.as_view(),
        name="api-table",
    ),
]
