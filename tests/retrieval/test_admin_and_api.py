"""The admin and the API show archives, images (with thumbnails) and class statistics."""

from __future__ import annotations

import io

import pytest
from PIL import Image as PILImage

from retrieval.models import Category, Image

pytestmark = pytest.mark.django_db


@pytest.fixture
def archive(small_archive):
    return small_archive


def test_admin_lists_archives_with_counts(admin_client, archive):
    response = admin_client.get("/admin/retrieval/archive/")

    assert response.status_code == 200
    body = response.content.decode()
    assert "synth" in body
    assert '<td class="field-n_images">120</td>' in body


def test_admin_category_list_shows_statistics_and_superclasses(admin_client, archive):
    response = admin_client.get("/admin/retrieval/category/", {"archive__id__exact": archive.pk})

    body = response.content.decode()
    assert response.status_code == 200
    oven = Category.objects.get(archive=archive, name="oven")
    assert f"{oven.clutter:.2f}" in body
    for code in ("CL", "CS", "UL", "US"):
        assert f'<td class="field-superclass">{code}</td>' in body


def test_admin_image_list_links_thumbnails_that_are_jpegs(admin_client, archive, settings):
    response = admin_client.get("/admin/retrieval/image/")
    image = Image.objects.filter(archive=archive).order_by("coco_id").first()
    assert response.status_code == 200
    assert f"/images/{image.pk}/thumbnail.jpg" in response.content.decode()

    thumbnail = admin_client.get(f"/images/{image.pk}/thumbnail.jpg")

    assert thumbnail.status_code == 200
    picture = PILImage.open(io.BytesIO(b"".join(thumbnail.streaming_content)))
    assert picture.format == "JPEG"
    assert max(picture.size) == min(settings.THUMBNAIL_SIZE, max(image.width, image.height))


def test_thumbnails_are_for_staff_only(client, archive):
    image = Image.objects.filter(archive=archive).first()

    response = client.get(f"/images/{image.pk}/thumbnail.jpg")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_api_lists_archives_and_category_statistics(admin_client, archive):
    archives = admin_client.get("/api/archives/").json()
    categories = admin_client.get(f"/api/archives/{archive.pk}/categories/").json()

    assert archives["count"] == 1
    assert archives["results"][0]["name"] == "synth"
    assert archives["results"][0]["n_images"] == 120
    assert len(categories) == 24
    by_name = {c["name"]: c for c in categories}
    oven = Category.objects.get(archive=archive, name="oven")
    assert by_name["oven"]["instance_count"] == oven.instance_count
    assert by_name["oven"]["clutter"] == pytest.approx(oven.clutter)
    assert {c["superclass"] for c in categories} == {"CL", "CS", "UL", "US"}


def test_api_refuses_anonymous_users(client, archive):
    assert client.get("/api/archives/").status_code == 403
