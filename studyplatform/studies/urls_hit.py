"""The worker's routes (namespace ``hit``): the MTurk ExternalQuestion page, lab mode, and the
page's JSON endpoints (``apis_hit``), all under ``hit/<study>/`` (lab mode under ``lab/<study>/``)."""

from django.urls import path

from . import apis_hit, views

app_name = "hit"

urlpatterns = [
    path("hit/<slug:study>/", views.hit, name="page"),
    path("lab/<slug:study>/", views.lab, name="lab"),
    path("hit/<slug:study>/api/state", apis_hit.HitStateApi.as_view(), name="state"),
    path("hit/<slug:study>/api/event", apis_hit.HitEventApi.as_view(), name="event"),
    path("hit/<slug:study>/api/begin", apis_hit.HitBeginApi.as_view(), name="begin"),
    path("hit/<slug:study>/api/refine", apis_hit.HitRefineApi.as_view(), name="refine"),
    path(
        "hit/<slug:study>/api/refine-retry",
        apis_hit.HitRefineRetryApi.as_view(),
        name="refine_retry",
    ),
    path("hit/<slug:study>/api/finish", apis_hit.HitFinishApi.as_view(), name="finish"),
    path("hit/<slug:study>/api/answers", apis_hit.HitAnswersApi.as_view(), name="answers"),
    path("hit/<slug:study>/api/tutorial", apis_hit.HitTutorialApi.as_view(), name="tutorial"),
    path("hit/<slug:study>/api/submit", apis_hit.HitSubmitApi.as_view(), name="submit"),
    path(
        "hit/<slug:study>/image/<int:image_id>",
        apis_hit.HitImageApi.as_view(),
        name="image",
    ),
]
