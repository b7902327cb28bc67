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
    path("images/<int:pk>/thumbnail.jpg", views.thumbnail, name="image-thumbnail"),
]
