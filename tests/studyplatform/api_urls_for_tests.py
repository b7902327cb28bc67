"""The project's URLs plus the studies API, as ``studyplatform/urls.py`` will include it."""

from django.urls import include, path

from studyplatform.urls import urlpatterns as project_urlpatterns

urlpatterns = [path("", include("studyplatform.api_urls")), *project_urlpatterns]
