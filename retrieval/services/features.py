"""Writes of feature sets: create one per (archive, backbone config), extract it on a GPU worker.

The numeric work is in ``retrieval.backbones`` and ``retrieval.extraction`` (no Django); this
module maps archive images to rows, keeps the ``FeatureSet`` row in step with the files, and
enqueues the Celery task after the creating transaction commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.db import transaction

from ..backbone_config import BackboneConfig, backbone_config_key
from ..backbones import build_backbone
from ..extraction import extract_features, load_features
from ..hik_codes import HikCodes
from ..models import Archive, FeatureSet, Image

logger = logging.getLogger(__name__)


def feature_set_create(
    *, archive: Archive, backbone_config: dict, enqueue: bool = True
) -> tuple[FeatureSet, bool]:
    """The feature set of ``archive`` under ``backbone_config``, created (and queued) if new.

    Idempotent: the same archive and config give the same row. ``backbone_config`` is validated
    first (``ValueError`` names an unknown backbone or layer); with ``enqueue`` the extraction
    task is sent to the ``gpu`` queue once the transaction commits.
    """
    config = BackboneConfig.from_dict(backbone_config)
    key = backbone_config_key(config)
    with transaction.atomic():
        feature_set, created = FeatureSet.objects.get_or_create(
            archive=archive,
            config_key=key,
            defaults={
                "backbone_config": config.to_dict(),
                "path": f"{archive.name}/{config.name}-{key[:16]}.npy",
                "n_rows": Image.objects.filter(archive=archive).count(),
            },
        )
        if enqueue and feature_set.status != FeatureSet.Status.DONE:
            from ..tasks import feature_set_extract as task

            task.delay_on_commit(feature_set.pk)
    return feature_set, created


def feature_set_extract(
    *,
    feature_set: FeatureSet,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    batch_size: int = 32,
) -> FeatureSet:
    """Run (or resume) the extraction of ``feature_set``; safe to call again after a crash.

    Rows follow the archive's images in primary-key order, frozen in ``.ids.npy`` at the first
    run. Images that cannot be decoded leave an all-zero row and are listed in
    ``failed_images``. The row's ``rows_done`` follows the progress, batch by batch.
    """
    if feature_set.status == FeatureSet.Status.DONE:
        feature_set_codes_build(feature_set=feature_set)
        return feature_set
    features_path, ids_path = feature_set.features_path, feature_set.ids_path
    features_path.parent.mkdir(parents=True, exist_ok=True)
    images = list(
        Image.objects.filter(archive_id=feature_set.archive_id)
        .order_by("pk")
        .values_list("pk", "directory__path", "file_name")
    )
    image_ids = np.array([pk for pk, _, _ in images], dtype=np.int64)
    if ids_path.exists():
        frozen = np.load(ids_path)
        if not np.array_equal(frozen, image_ids):
            raise ValueError(
                f"archive {feature_set.archive_id} changed since feature set {feature_set.pk} started "
                f"({len(frozen)} rows then, {len(image_ids)} images now): create a new feature set"
            )
    else:
        np.save(ids_path, image_ids)
    paths = [Path(directory) / name for _, directory, name in images]

    backbone = build_backbone(BackboneConfig.from_dict(feature_set.backbone_config))
    FeatureSet.objects.filter(pk=feature_set.pk).update(
        status=FeatureSet.Status.RUNNING,
        weights_sha256=backbone.weights_sha256,
        n_rows=len(paths),
        error="",
    )

    def on_progress(done: int, total: int) -> None:
        FeatureSet.objects.filter(pk=feature_set.pk).update(rows_done=done)
        if progress is not None:
            progress(done, total)

    try:
        result = extract_features(
            backbone,
            paths,
            features_path,
            batch_size=batch_size,
            progress=on_progress,
            should_stop=should_stop,
        )
    except Exception as exc:
        FeatureSet.objects.filter(pk=feature_set.pk).update(
            status=FeatureSet.Status.FAILED, error=f"{type(exc).__name__}: {exc}"
        )
        raise
    finished = result.complete
    for row, path, reason in result.failed:
        logger.warning(
            "feature set %s: skipped image %s (%s): %s",
            feature_set.pk,
            image_ids[row],
            path,
            reason,
        )
    if finished:
        feature_set_codes_build(feature_set=feature_set)
    FeatureSet.objects.filter(pk=feature_set.pk).update(
        status=FeatureSet.Status.DONE if finished else FeatureSet.Status.PENDING,
        dim=result.dim,
        rows_done=result.rows_done,
        failed_images=[[int(image_ids[row]), reason] for row, _, reason in result.failed],
        seconds=result.seconds,
    )
    feature_set.refresh_from_db()
    return feature_set


def feature_set_codes_build(*, feature_set: FeatureSet) -> Path:
    """Build the HIK bucket codes of a feature set's rows, unless they exist and match.

    They let a whole-archive IQR refine score only the rows that bounds cannot rule out
    (``retrieval.hik_codes``); IQR works without them, scoring every row. Each file is written
    whole or not at all, and codes that no longer match the features are rebuilt.
    """
    folder = feature_set.codes_path
    features = load_features(feature_set.features_path)
    if folder.is_dir():
        try:
            HikCodes.load(folder).check_matches(features)
            return folder
        except (FileNotFoundError, ValueError):
            logger.info("feature set %s: rebuilding stale HIK codes", feature_set.pk)
    return HikCodes.build(features).save(folder)
