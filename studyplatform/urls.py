from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("", include("retrieval.urls")),
    path("", include("studyplatform.api_urls")),
    path("", include("analysis.urls")),
    # The worker's HIT (MTurk ExternalQuestion), lab mode, and the page's JSON endpoints.
    path("hit/<slug:study>/", views.hit, name="hit"),
    path("lab/<slug:study>/", views.lab, name="lab"),
    path("hit/<slug:study>/api/state", views.api_state, name="hit-state"),
    path("hit/<slug:study>/api/event", views.api_event, name="hit-event"),
    path("hit/<slug:study>/api/begin", views.api_begin, name="hit-begin"),
    path("hit/<slug:study>/api/refine", views.api_refine, name="hit-refine"),
    path("hit/<slug:study>/api/finish", views.api_finish, name="hit-finish"),
    path("hit/<slug:study>/api/answers", views.api_answers, name="hit-answers"),
    path("hit/<slug:study>/api/tutorial", views.api_tutorial, name="hit-tutorial"),
    path("hit/<slug:study>/api/submit", views.api_submit, name="hit-submit"),
    path("hit/<slug:study>/image/<int:image_id>", views.api_image, name="hit-image"),
]
if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

admin.site.site_header = "studyplatform"
admin.site.site_title = "studyplatform admin"
admin.site.index_title = "Archives, studies and analysis"
