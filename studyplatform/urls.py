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
    path("", include("studyplatform.studies.urls_api")),
    path("", include("analysis.urls")),
    path("", include("studyplatform.studies.urls_hit")),
]
if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

admin.site.site_header = "studyplatform"
admin.site.site_title = "studyplatform admin"
admin.site.index_title = "Archives, studies and analysis"
