"""The worker's routes (namespace ``hit``): the MTurk ExternalQuestion page, lab mode, and the
page's JSON endpoints, all under ``hit/<study>/`` (lab mode under ``lab/<study>/``)."""

from django.urls import path

from . import views

app_name = "hit"

urlpatterns = [
    path("hit/<slug:study>/", views.hit, name="page"),
    path("lab/<slug:study>/", views.lab, name="lab"),
    path("hit/<slug:study>/api/state", views.api_state, name="state"),
    path("hit/<slug:study>/api/event", views.api_event, name="event"),
    path("hit/<slug:study>/api/begin", views.api_begin, name="begin"),
    path("hit/<slug:study>/api/refine", views.api_refine, name="refine"),
    path("hit/<slug:study>/api/refine-retry", views.api_refine_retry, name="refine_retry"),
    path("hit/<slug:study>/api/finish", views.api_finish, name="finish"),
    path("hit/<slug:study>/api/answers", views.api_answers, name="answers"),
    path("hit/<slug:study>/api/tutorial", views.api_tutorial, name="tutorial"),
    path("hit/<slug:study>/api/submit", views.api_submit, name="submit"),
    path("hit/<slug:study>/image/<int:image_id>", views.api_image, name="image"),
]
