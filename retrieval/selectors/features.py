"""Reads of feature sets: arrays, image-id <-> row mapping, nearest-neighbour search, accuracy.

Imports the numeric modules (and torch); kept apart from the archive selectors so that processes
that only show archives do not load them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..accuracy import retrieval_accuracy
from ..feature_files import load_features
from ..hik_codes import HikCodes
from ..models import Annotation, Category, FeatureSet, Image
from ..search import top_k


@functools.lru_cache(maxsize=8)
def _arrays(features_path: str, modified: float) -> tuple[np.ndarray, np.ndarray]:
    # Keyed by modification time, so a re-extracted file is reopened, not served stale.
    ids = np.load(Path(features_path).with_suffix(".ids.npy"))
    return load_features(features_path), ids


def feature_set_arrays(*, feature_set: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
    """(features (n_rows, dim) float32 read-only memmap, image id of each row (n_rows,) int64).

    Raises ``ValueError`` unless the feature set is fully extracted.
    """
    if feature_set.status != FeatureSet.Status.DONE:
        raise ValueError(f"feature set {feature_set.pk} is {feature_set.status}, not done")
    path = feature_set.features_path
    return _arrays(str(path), path.stat().st_mtime)


@functools.lru_cache(maxsize=8)
def _codes(folder: str, modified: float) -> HikCodes:
    return HikCodes.load(folder)


def feature_set_codes(*, feature_set: FeatureSet) -> HikCodes | None:
    """The feature set's HIK bucket codes (a read-only memmap), or None when not built."""
    folder = feature_set.codes_path
    if not (folder / "codes.npy").is_file():
        return None
    return _codes(str(folder), (folder / "codes.npy").stat().st_mtime)


def feature_set_resident(*, feature_set: FeatureSet, device: str):
    """The feature set's features resident on ``device`` (``retrieval.resident``), loaded once
    per process (the gpu worker's archive); keyed by the file's path and modification time."""
    from ..resident import resident_features

    path = feature_set.features_path
    key = (str(path), path.stat().st_mtime)
    return resident_features(
        key, lambda: feature_set_arrays(feature_set=feature_set)[0], device=device
    )


def feature_set_rows(*, feature_set: FeatureSet, image_ids: Iterable[int]) -> np.ndarray:
    """Rows of ``image_ids`` in the feature set; ``ValueError`` naming ids it does not hold."""
    _, ids = feature_set_arrays(feature_set=feature_set)
    wanted = np.fromiter((int(i) for i in image_ids), dtype=np.int64)
    rows = np.searchsorted(ids, wanted)
    found = (rows < len(ids)) & (ids[np.minimum(rows, len(ids) - 1)] == wanted)
    if not found.all():
        missing = ", ".join(map(str, wanted[~found][:10].tolist()))
        raise ValueError(
            f"image(s) {missing} are not in feature set {feature_set.pk} (archive {feature_set.archive_id})"
        )
    return rows


def search(
    *,
    feature_set: FeatureSet,
    query_image: Image,
    k: int = 50,
    metric: str = "hik",
    exclude: Iterable[int] = (),
    candidates: Iterable[int] | None = None,
    include_query: bool = False,
) -> list[tuple[int, float]]:
    """The ``k`` nearest archive images to ``query_image``: [(image id, distance), ...].

    ``metric``: "hik" (1 - histogram intersection, seed 000's), "l2" or "cosine". ``exclude``
    and ``candidates`` are image ids (candidates restricts the search: conditional retrieval).
    The query image itself is left out unless ``include_query``.
    """
    features, ids = feature_set_arrays(feature_set=feature_set)
    query_row = feature_set_rows(feature_set=feature_set, image_ids=[query_image.pk])[0]
    excluded = feature_set_rows(feature_set=feature_set, image_ids=exclude)
    if not include_query:
        excluded = np.append(excluded, query_row)
    candidate_rows = (
        None
        if candidates is None
        else feature_set_rows(feature_set=feature_set, image_ids=candidates)
    )
    rows, distances = top_k(
        features,
        np.asarray(features[query_row]),
        k,
        metric=metric,
        exclude=excluded,
        candidates=candidate_rows,
    )
    return [(int(ids[row]), float(d)) for row, d in zip(rows, distances, strict=True)]


def retrieval_accuracy_of(*, ranking: list[int], category: Category, n: int = 50) -> float:
    """Seed 000, Eq. 5: fraction of the top ``n`` image ids whose annotations hold ``category``."""
    top = list(ranking[:n])
    holding = set(
        Annotation.objects.filter(image_id__in=top, category=category).values_list(
            "image_id", flat=True
        )
    )
    return retrieval_accuracy(np.asarray(top), holding, n=n)
