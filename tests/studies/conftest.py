"""Fixtures of the study app's tests.

``demo_study``: the demo spec (``fixtures/studies/demo.yaml``) applied to the 120-image synthetic
archive (``small_archive``, imported as "synth") with the fixture backbone's features: a live
study with 2 conditions (``no-xai``; ``sbsm`` with 32 px blocks every 16 px), 12 queries in 6
classes (2 each), 12 task pairs, 2 repetitions, target count 4, 12 results per round, pools of
36, and the questionnaires of the spec. ``demo_feature_set`` is the feature set alone (status
done); ``demo_spec`` is the parsed demo spec pointing at "synth".

Speed: the features are extracted once per test session (``retrieval.extraction``, the same
code the extraction service runs) and each test gets its own copy under its own ``DATA_DIR``
with the ids of its own image rows; the archive is generated once per session and imported per
test (the database is rolled back between tests). A test that checks the copy against a real
``feature_set_extract`` run lives in ``test_studies.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEMO_SPEC = ROOT / "fixtures" / "studies" / "demo.yaml"
SEED001_SPEC = ROOT / "fixtures" / "studies" / "seed001.yaml"
FIXTURE_BACKBONE = {"name": "synthnet", "weights": "fixture", "image_size": 128}


@pytest.fixture(scope="session")
def _demo_features(synthetic_archive_small, tmp_path_factory):
    """(features (120, dim) float32 in COCO id order, COCO ids (120,), weights SHA-256)."""
    import json

    from retrieval.backbones import BackboneConfig, build_backbone
    from retrieval.extraction import extract_features

    instances = json.loads((synthetic_archive_small / "instances.json").read_text())
    images = sorted(instances["images"], key=lambda image: image["id"])
    backbone = build_backbone(BackboneConfig.from_dict(FIXTURE_BACKBONE))
    out = tmp_path_factory.mktemp("demo-features") / "features.npy"
    extract_features(
        backbone,
        [synthetic_archive_small / "images" / image["file_name"] for image in images],
        out,
        device="cpu",
    )
    features = np.array(np.load(out), dtype=np.float32)
    coco_ids = np.array([image["id"] for image in images], dtype=np.int64)
    return features, coco_ids, backbone.weights_sha256


@pytest.fixture
def demo_feature_set(small_archive, settings, tmp_path, _demo_features):
    """The fixture backbone's feature set of ``small_archive``, status done, in this test's
    ``DATA_DIR`` (``settings.DATA_DIR`` and ``SALIENCY_CACHE_DIR`` point into ``tmp_path``)."""
    from retrieval.models import FeatureSet, Image
    from retrieval.services.features import feature_set_create

    settings.DATA_DIR = tmp_path / "data"
    settings.SALIENCY_CACHE_DIR = tmp_path / "cache"
    features, coco_ids, sha256 = _demo_features
    feature_set, _ = feature_set_create(
        archive=small_archive, backbone_config=FIXTURE_BACKBONE, enqueue=False
    )
    rows = list(
        Image.objects.filter(archive=small_archive).order_by("pk").values_list("pk", "coco_id")
    )
    row_of = {int(coco_id): row for row, coco_id in enumerate(coco_ids)}
    order = [row_of[coco_id] for _, coco_id in rows]
    feature_set.features_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(feature_set.features_path, features[order])
    np.save(feature_set.ids_path, np.array([pk for pk, _ in rows], dtype=np.int64))
    FeatureSet.objects.filter(pk=feature_set.pk).update(
        status=FeatureSet.Status.DONE,
        dim=features.shape[1],
        n_rows=len(rows),
        rows_done=len(rows),
        weights_sha256=sha256,
    )
    feature_set.refresh_from_db()
    return feature_set


@pytest.fixture
def demo_spec(small_archive) -> dict:
    """The demo spec as parsed from YAML, its archive set to ``small_archive`` ("synth")."""
    spec = yaml.safe_load(DEMO_SPEC.read_text())
    spec["archive"] = small_archive.name
    return spec


@pytest.fixture
def demo_study(demo_feature_set, demo_spec):
    """The demo study, live, with its task pairs (see the module docstring)."""
    from studyplatform.studies.services.studies import study_create_from_spec, study_status_set

    study = study_create_from_spec(spec=demo_spec)
    study_status_set(study=study, status="ready")
    study_status_set(study=study, status="live")
    return study
