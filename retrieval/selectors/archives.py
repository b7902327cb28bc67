"""Reads of archives and their class statistics."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, QuerySet

from ..models import Archive, Category, FeatureSet
from ..statistics import superclasses


def archive_list() -> QuerySet[Archive]:
    """Archives with ``n_images``, ``n_categories`` annotated (one query each)."""
    return Archive.objects.annotate(
        n_images=Count("images", distinct=True), n_categories=Count("categories", distinct=True)
    ).order_by("name")


def category_list(*, archive: Archive) -> QuerySet[Category]:
    return Category.objects.filter(archive=archive).order_by("coco_id")


def category_superclasses(
    *, archive: Archive, names: Iterable[str] | None = None
) -> dict[str, str]:
    """Superclass code ("CL", "CS", "UL", "US") of each chosen class, as seed 001 section 5.1.

    The split is relative to the chosen set (seed 001: its 24 query classes): Cluttered = top half
    by clutter, Large = top half by size. ``names`` defaults to every class with annotations.
    Raises ``ValueError`` naming classes that are unknown or have no annotations.
    """
    categories = category_list(archive=archive)
    if names is None:
        chosen = [c for c in categories if c.instance_count > 0]
    else:
        wanted = list(dict.fromkeys(names))
        by_name = {c.name: c for c in categories.filter(name__in=wanted)}
        unknown = [n for n in wanted if n not in by_name or by_name[n].instance_count == 0]
        if unknown:
            raise ValueError(
                f"archive {archive.name!r} has no annotated class named {', '.join(map(repr, unknown))}"
            )
        chosen = [by_name[n] for n in wanted]
    return superclasses({c.name: c.clutter for c in chosen}, {c.name: c.size for c in chosen})


def feature_set_list(*, archive: Archive) -> QuerySet[FeatureSet]:
    """The archive's feature sets, newest first."""
    return FeatureSet.objects.filter(archive=archive).order_by("-created_at")
