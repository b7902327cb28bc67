"""Writes of the retrieval app, by sub-domain: archives (import, statistics, thumbnails) and
features (extraction, search, IQR)."""

from .archives import (
    ImportResult,
    archive_import_coco,
    archive_statistics_refresh,
    image_thumbnail,
)

__all__ = [
    "ImportResult",
    "archive_import_coco",
    "archive_statistics_refresh",
    "image_thumbnail",
]
