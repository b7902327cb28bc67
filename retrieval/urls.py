from django.urls import path

from . import apis, views

app_name = "retrieval"

urlpatterns = [
    path("api/archives/", apis.ArchiveListApi.as_view(), name="archive-list"),
    path(
        "api/archives/<int:archive_id>/categories/",
        apis.CategoryListApi.as_view(),
        name="category-list",
    ),
    path(
        "api/archives/<int:archive_id>/feature-sets/",
        apis.FeatureSetListCreateApi.as_view(),
        name="feature-set-list",
    ),
    path(
        "api/feature-sets/<int:feature_set_id>/",
        apis.FeatureSetDetailApi.as_view(),
        name="feature-set-detail",
    ),
    path("images/<int:pk>/thumbnail.jpg", views.thumbnail, name="image-thumbnail"),
]
