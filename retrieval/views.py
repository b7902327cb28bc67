"""Image files for the admin (and, later, the task pages)."""

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from .models import Image
from .services import image_thumbnail


@require_GET
@staff_member_required
def thumbnail(request: HttpRequest, pk: int) -> FileResponse:
    image = get_object_or_404(Image.objects.select_related("directory"), pk=pk)
    try:
        key = image_thumbnail(image=image, size=settings.THUMBNAIL_SIZE)
    except FileNotFoundError:
        raise Http404(f"image file {image.file_name} is missing") from None
    response = FileResponse(default_storage.open(key, "rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response
