"""Saliency maps of archive images: computed once, masked embeddings reused, overlays rendered."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from explain.methods.sbsm import Sbsm
from explain.models import SaliencyMap
from explain.render import npy_bytes_to_map
from explain.services import saliency_maps_compute, saliency_overlays_render
from explain.tasks import saliency_overlays_render as render_task
from explain.tasks import saliency_precompute_chunk
from retrieval.backbones import BackboneConfig, build_backbone
from retrieval.models import Image
from retrieval.services.features import feature_set_create, feature_set_extract

pytestmark = pytest.mark.django_db

FIXTURE = {"name": "synthnet", "weights": "fixture", "image_size": 128}
# Coarse masks keep the test fast: (128 - 32) / 16 + 1 = 7 positions per axis, 49 masks.
SBSM = {"method": "sbsm", "block": 32, "stride": 16, "distance": "hik", "fill": "blur"}


@pytest.fixture
def feature_set(small_archive, settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    settings.SALIENCY_CACHE_DIR = tmp_path / "cache"
    feature_set, _ = feature_set_create(
        archive=small_archive, backbone_config=FIXTURE, enqueue=False
    )
    return feature_set_extract(feature_set=feature_set)


@pytest.fixture
def images(small_archive):
    return list(
        Image.objects.filter(archive=small_archive).select_related("directory").order_by("pk")[:5]
    )


def stored_map(row: SaliencyMap) -> np.ndarray:
    with default_storage.open(row.raw_key, "rb") as handle:
        return npy_bytes_to_map(handle.read())


def test_maps_are_computed_once_and_stored(feature_set, images):
    query, results = images[0], images[1:4]

    rows = saliency_maps_compute(
        feature_set=feature_set, query=query, results=results, method_config=SBSM
    )
    again = saliency_maps_compute(
        feature_set=feature_set, query=query, results=results, method_config=SBSM
    )

    assert [r.result_id for r in rows] == [r.pk for r in results]
    assert [r.pk for r in again] == [r.pk for r in rows]
    assert SaliencyMap.objects.count() == 3
    for row in rows:
        saliency = stored_map(row)
        assert saliency.shape == (128, 128)
        with default_storage.open(row.raw_key, "rb") as handle:
            assert np.load(io.BytesIO(handle.read())).dtype == np.float16  # stored as half floats
        assert np.isfinite(saliency).all()
        assert (saliency >= 0).all()
        assert row.map_max == pytest.approx(float(saliency.max()), rel=1e-3)
        # The full config is recorded, the backbone's normalisation included.
        assert row.method_config["block"] == 32
        assert row.method_config["mean"] == pytest.approx([0.5, 0.5, 0.5], abs=0.5)


def test_a_second_query_reuses_the_masked_embeddings_and_gets_its_own_map(feature_set, images):
    first = saliency_maps_compute(
        feature_set=feature_set, query=images[0], results=[images[2]], method_config=SBSM
    )[0]
    second = saliency_maps_compute(
        feature_set=feature_set, query=images[1], results=[images[2]], method_config=SBSM
    )[0]

    assert (first.from_cache, second.from_cache) == (False, True)
    assert not np.array_equal(stored_map(first), stored_map(second))


def test_the_stored_map_is_seed_000s_sbsm_within_float16_precision(feature_set, images):
    row = saliency_maps_compute(
        feature_set=feature_set, query=images[0], results=[images[1]], method_config=SBSM
    )[0]
    backbone = build_backbone(BackboneConfig.from_dict(FIXTURE))
    config = {k: v for k, v in row.method_config.items() if k != "method"}

    def tensor(image):
        with PILImage.open(f"{image.directory.path}/{image.file_name}") as picture:
            return backbone.preprocess(picture.convert("RGB"))

    with torch.inference_mode():
        direct = Sbsm(**config).explain(backbone.model, tensor(images[0]), tensor(images[1])[None])[
            0
        ]

    scale = max(float(direct.max()), 1e-12)
    assert np.abs(stored_map(row).astype(np.float64) - direct).max() <= 2e-2 * scale


def test_overlays_share_one_normalisation_at_the_study_scale(feature_set, images):
    rows = saliency_maps_compute(
        feature_set=feature_set, query=images[0], results=images[1:4], method_config=SBSM
    )
    key = rows[0].config_key

    assert saliency_overlays_render(feature_set=feature_set, config_key=key) == 3
    # the default: each map on its own scale, its own maximum at full colour
    for row in SaliencyMap.objects.all():
        assert row.overlay_config["scale"] == "map"
        assert row.vmax == pytest.approx(float(stored_map(row).max()))
    first = {row.pk: row.overlay_config for row in SaliencyMap.objects.all()}

    assert saliency_overlays_render(feature_set=feature_set, config_key=key) == 0
    assert (
        saliency_overlays_render(feature_set=feature_set, config_key=key, style={"scale": "study"})
        == 3
    )

    rendered = list(SaliencyMap.objects.all())
    assert len({r.vmax for r in rendered}) == 1
    assert {r.overlay_config["scale"] for r in rendered} == {"study"}
    assert all(r.overlay_config["vmin"] == 0.0 for r in rendered)
    assert first != {row.pk: row.overlay_config for row in rendered}
    for row in rendered:
        with default_storage.open(row.overlay_key, "rb") as handle:
            picture = PILImage.open(io.BytesIO(handle.read()))
            assert picture.format == "PNG"
            assert picture.size == (128, 128)


def test_an_unknown_method_or_parameter_is_refused_and_nothing_is_written(feature_set, images):
    with pytest.raises(ValueError, match="nosuchmethod"):
        saliency_maps_compute(
            feature_set=feature_set,
            query=images[0],
            results=[images[1]],
            method_config={"method": "nosuchmethod"},
        )
    with pytest.raises(ValueError, match="bogus"):
        saliency_maps_compute(
            feature_set=feature_set,
            query=images[0],
            results=[images[1]],
            method_config={"method": "sbsm", "bogus": 1},
        )
    assert not SaliencyMap.objects.exists()


def test_the_tasks_call_their_services_by_ids(feature_set, images):
    count = saliency_precompute_chunk(
        feature_set.pk, images[0].pk, [images[1].pk, images[2].pk], SBSM
    )
    rendered = render_task(feature_set.pk, SaliencyMap.objects.first().config_key)

    assert (count, rendered) == (2, 2)
    assert set(SaliencyMap.objects.values_list("result_id", "query_id")) == {
        (images[0].pk, images[1].pk),
        (images[0].pk, images[2].pk),
    }


def test_admin_lists_maps_with_their_overlays(admin_client, feature_set, images):
    rows = saliency_maps_compute(
        feature_set=feature_set, query=images[0], results=images[1:3], method_config=SBSM
    )
    saliency_overlays_render(feature_set=feature_set, config_key=rows[0].config_key)

    body = admin_client.get("/admin/explain/saliencymap/").content.decode()

    assert body.count('alt="saliency overlay"') == 2
    assert default_storage.url(SaliencyMap.objects.first().overlay_key) in body


@pytest.mark.parametrize(
    "config",
    [
        {"method": "sam"},
        {"method": "rise", "n_masks": 40, "grid": 4},
        {"method": "occlusion", "window": 32, "stride": 32},
    ],
)
def test_every_other_method_runs_through_the_same_service(feature_set, images, config):
    row = saliency_maps_compute(
        feature_set=feature_set, query=images[0], results=[images[1]], method_config=config
    )[0]

    assert row.method == config["method"]
    assert stored_map(row).shape == (128, 128)
    assert not row.from_cache
