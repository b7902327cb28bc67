"""Streaming, validating reader of COCO-format instances files.

No Django here: the reader yields validated plain records and raises :class:`CocoFormatError`,
whose message names the file and the offending record. It never holds the file in memory: each
section is streamed with ijson's C parser, one pass per section, because the real COCO files put
``categories`` *after* ``annotations`` and annotations must be checked against the categories.
Memory is bounded by the sets of image and annotation ids (about 100 MB for COCO train2017).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import ijson

IMAGE_KEYS = ("id", "file_name", "width", "height")
ANNOTATION_KEYS = ("id", "image_id", "category_id", "bbox")
CATEGORY_KEYS = ("id", "name")


class CocoFormatError(ValueError):
    """The file is not a usable COCO instances file; the message says where and why."""


@dataclass(frozen=True, slots=True)
class CocoCategory:
    id: int
    name: str
    supercategory: str


@dataclass(frozen=True, slots=True)
class CocoImage:
    """``width`` and ``height`` in pixels; ``extra`` holds the other fields (license, url...)."""

    id: int
    file_name: str
    width: int
    height: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CocoAnnotation:
    """``bbox`` is ``(x, y, w, h)`` in pixels; ``area`` in px^2 (COCO's segment area)."""

    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    area: float
    iscrowd: bool
    segmentation: Any


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) and math.isfinite(value)


def _inside_folder(file_name: str) -> bool:
    """True when joining ``file_name`` to a folder stays inside it: relative, no ``..`` part,
    no drive or NUL byte (archives are read with ``folder / file_name``)."""
    path = PurePosixPath(file_name.replace("\\", "/"))
    return not (
        path.is_absolute()
        or ".." in path.parts
        or "\0" in file_name
        or PureWindowsPath(file_name).drive
    )


class CocoReader:
    """Validating reader for one instances file.

    Call :meth:`categories`, then iterate :meth:`images`, then :meth:`annotations`; each call
    streams the file once. ``check_files_in``, when given, is the image folder in which every
    image's ``file_name`` must exist.
    """

    def __init__(self, path: Path | str, *, check_files_in: Path | str | None = None) -> None:
        self.path = Path(path)
        self.check_files_in = Path(check_files_in) if check_files_in is not None else None
        self.category_ids: set[int] = set()
        self.image_ids: set[int] = set()
        if not self.path.is_file():
            raise CocoFormatError(f"{self.path}: no such file")

    # -- errors ------------------------------------------------------------------------------
    def _error(self, section: str, index: int, record: Any, message: str) -> CocoFormatError:
        ident = record.get("id") if isinstance(record, dict) else None
        where = f"{section}[{index}]" + (f" (id {ident})" if ident is not None else "")
        return CocoFormatError(f"{self.path.name}: {where}: {message}")

    def _items(self, section: str) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, record)`` of the top-level array ``section``, streaming."""
        with open(self.path, "rb") as handle:
            try:
                yield from enumerate(ijson.items(handle, f"{section}.item", use_float=True))
            except ijson.JSONError as exc:
                raise CocoFormatError(
                    f"{self.path.name}: not valid JSON (truncated or corrupt?) while reading "
                    f"'{section}': {exc}"
                ) from None

    def _require(self, section: str, index: int, record: Any, keys: tuple[str, ...]) -> None:
        if not isinstance(record, dict):
            raise self._error(
                section, index, record, f"expected an object, got {type(record).__name__}"
            )
        missing = [key for key in keys if key not in record]
        if missing:
            raise self._error(section, index, record, f"missing key(s) {', '.join(missing)}")

    # -- sections ----------------------------------------------------------------------------
    def categories(self) -> list[CocoCategory]:
        """All categories, validated: integer unique ids, non-empty unique names."""
        categories: list[CocoCategory] = []
        names: set[str] = set()
        for index, record in self._items("categories"):
            self._require("categories", index, record, CATEGORY_KEYS)
            cid, name = record["id"], record["name"]
            if not _is_int(cid):
                raise self._error("categories", index, record, f"id {cid!r} is not an integer")
            if not isinstance(name, str) or not name.strip():
                raise self._error(
                    "categories", index, record, f"name {name!r} is not a non-empty string"
                )
            if cid in self.category_ids:
                raise self._error("categories", index, record, f"duplicate category id {cid}")
            if name in names:
                raise self._error("categories", index, record, f"duplicate category name {name!r}")
            self.category_ids.add(cid)
            names.add(name)
            categories.append(CocoCategory(cid, name, str(record.get("supercategory") or "")))
        if not categories:
            raise CocoFormatError(
                f"{self.path.name}: no 'categories' (an instances file needs them)"
            )
        return categories

    def images(self) -> Iterator[CocoImage]:
        """Images, validated: unique integer ids, positive integer sizes, existing files."""
        for index, record in self._items("images"):
            self._require("images", index, record, IMAGE_KEYS)
            iid, file_name = record["id"], record["file_name"]
            width, height = record["width"], record["height"]
            if not _is_int(iid):
                raise self._error("images", index, record, f"id {iid!r} is not an integer")
            if iid in self.image_ids:
                raise self._error("images", index, record, f"duplicate image id {iid}")
            if not isinstance(file_name, str) or not file_name:
                raise self._error(
                    "images", index, record, f"file_name {file_name!r} is not a non-empty string"
                )
            if not _inside_folder(file_name):
                raise self._error(
                    "images",
                    index,
                    record,
                    f"file_name {file_name!r} must be a relative path inside the image folder "
                    "(no leading '/', no '..', no NUL)",
                )
            if not (_is_int(width) and _is_int(height) and width > 0 and height > 0):
                raise self._error(
                    "images",
                    index,
                    record,
                    f"width/height {width!r}x{height!r} are not positive integers",
                )
            if self.check_files_in is not None and not os.path.isfile(
                self.check_files_in / file_name
            ):
                raise self._error(
                    "images",
                    index,
                    record,
                    f"image file {self.check_files_in / file_name} does not exist",
                )
            self.image_ids.add(iid)
            extra = {k: v for k, v in record.items() if k not in IMAGE_KEYS and v not in (None, "")}
            yield CocoImage(iid, file_name, width, height, extra)
        if not self.image_ids:
            raise CocoFormatError(f"{self.path.name}: no 'images'")

    def annotations(self) -> Iterator[CocoAnnotation]:
        """Annotations, validated against the categories and images read before.

        ``area`` defaults to the bbox area and ``iscrowd`` to 0 when a file omits them.
        """
        if not self.image_ids or not self.category_ids:
            raise RuntimeError("read categories() and images() before annotations()")
        seen: set[int] = set()
        for index, record in self._items("annotations"):
            self._require("annotations", index, record, ANNOTATION_KEYS)
            aid, image_id, category_id = record["id"], record["image_id"], record["category_id"]
            if not _is_int(aid):
                raise self._error("annotations", index, record, f"id {aid!r} is not an integer")
            if aid in seen:
                raise self._error("annotations", index, record, f"duplicate annotation id {aid}")
            if image_id not in self.image_ids:
                raise self._error(
                    "annotations",
                    index,
                    record,
                    f"image_id {image_id!r} is not among the file's images",
                )
            if category_id not in self.category_ids:
                raise self._error(
                    "annotations",
                    index,
                    record,
                    f"unknown category_id {category_id!r} (not among the file's categories)",
                )
            bbox = record["bbox"]
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))):
                raise self._error(
                    "annotations", index, record, f"bbox {bbox!r} is not 4 finite numbers"
                )
            if bbox[2] < 0 or bbox[3] < 0:
                raise self._error(
                    "annotations", index, record, f"bbox {bbox!r} has a negative size"
                )
            area = record.get("area", bbox[2] * bbox[3])
            if not _is_number(area) or area < 0:
                raise self._error(
                    "annotations", index, record, f"area {area!r} is not a number >= 0"
                )
            iscrowd = record.get("iscrowd", 0)
            if iscrowd not in (0, 1):
                raise self._error(
                    "annotations", index, record, f"iscrowd {iscrowd!r} is not 0 or 1"
                )
            seen.add(aid)
            yield CocoAnnotation(
                aid,
                image_id,
                category_id,
                tuple(float(v) for v in bbox),
                float(area),
                bool(iscrowd),
                record.get("segmentation", []),
            )
