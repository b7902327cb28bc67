"""URLs of the researcher API of studies (``studyplatform.studies.apis``), under ``api/studies/``."""

from django.urls import path

from . import apis

app_name = "studies"

urlpatterns = [
    path("api/studies/", apis.StudyListCreateApi.as_view(), name="study-list"),
    path("api/studies/<slug:slug>/", apis.StudyDetailApi.as_view(), name="study-detail"),
    path("api/studies/<slug:slug>/spec/", apis.StudySpecApi.as_view(), name="study-spec"),
    path("api/studies/<slug:slug>/status/", apis.StudyStatusApi.as_view(), name="study-status"),
    path(
        "api/studies/<slug:slug>/task-pairs/",
        apis.TaskPairListApi.as_view(),
        name="task-pair-list",
    ),
    path("api/studies/<slug:slug>/events/", apis.EventExportApi.as_view(), name="event-list"),
    path(
        "api/studies/<slug:slug>/responses/",
        apis.ResponseExportApi.as_view(),
        name="response-list",
    ),
    path(
        "api/studies/<slug:slug>/progress/",
        apis.StudyProgressApi.as_view(),
        name="study-progress",
    ),
]
