"""What the worker's image view may serve: only images of the browser's own assignment.

A worker sees the queries of their tasks, the images their tasks have shown, the practice
images of their tutorial, and (with-XAI) the overlays of shown results; any other image id
answers 404, the same as an image that does not exist, so ids reveal nothing.
"""

from __future__ import annotations

from retrieval.models import Image

from ..errors import HitRefused
from ..models import Assignment
from .events import shown_image_ids
from .hit_overlays import overlay_keys
from .hit_state import image_allowed
from .search_tasks import search_task_of_assignment


def hit_image_get(*, assignment: Assignment, image_id: int) -> Image:
    """The archive image ``image_id`` (with its directory) if ``assignment`` may see it.

    Raises :class:`HitRefused` (404) for an image that does not exist or is not this HIT's.
    """
    image = Image.objects.filter(pk=image_id).select_related("directory").first()
    if image is None or not image_allowed(assignment=assignment, image_id=image_id):
        raise HitRefused("no such image in this HIT", status=404)
    return image


def hit_overlay_key(*, assignment: Assignment, task_id: int, image_id: int) -> str:
    """Storage key of the saliency overlay (PNG) of ``image_id`` in task ``task_id``.

    Raises :class:`HitRefused`: 403 when the task is not this assignment's, 404 when the task
    never showed the image or the image has no overlay (a no-XAI task has none).
    """
    task = search_task_of_assignment(assignment=assignment, task_id=task_id)
    key = overlay_keys(task=task, image_ids=[image_id]).get(image_id)
    if key is None or image_id not in shown_image_ids(task=task):
        raise HitRefused("no overlay of that image in this task", status=404)
    return key
