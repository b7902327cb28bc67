"""A study's saliency precompute: every with-XAI pool map once, resumable, queued or in process."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from explain.methods.sbsm import Sbsm
from explain.models import SaliencyMap
from explain.selectors import (
    saliency_maps_of_study,
    saliency_overlay_key,
    saliency_overlay_keys,
    saliency_plan,
    saliency_progress,
)
from explain.services import saliency_precompute_study
from retrieval.models import Annotation, Image
from retrieval.services.features import feature_set_create, feature_set_extract
from studyplatform.studies.models import Condition, QueryImage, Study, TaskPair
from studyplatform.studies.selectors.pools import candidate_pool

pytestmark = pytest.mark.django_db

FIXTURE = {"name": "synthnet", "weights": "fixture", "image_size": 128}
# 9 masks per result at 128 px: (128 - 64) / 32 + 1 = 3 block positions per axis.
CHEAP_SBSM = {"block": 64, "stride": 32, "distance": "hik", "fill": "zero_pixel"}
POOL = 5


@pytest.fixture
def feature_set(small_archive, settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    settings.SALIENCY_CACHE_DIR = tmp_path / "cache"
    feature_set, _ = feature_set_create(
        archive=small_archive, backbone_config=FIXTURE, enqueue=False
    )
    return feature_set_extract(feature_set=feature_set)


def _study(feature_set, *, slug="tiny") -> Study:
    return Study.objects.create(
        slug=slug,
        title="Tiny study",
        archive=feature_set.archive,
        feature_set=feature_set,
        candidate_pool_size=POOL,
        results_per_round=3,
        target_count=2,
    )


def _single_class_images(study: Study) -> dict[int, list[Image]]:
    """Images holding exactly one class, by category id, in id order."""
    by_class: dict[int, list[Image]] = {}
    for image in Image.objects.filter(archive=study.archive).order_by("pk"):
        categories = set(
            Annotation.objects.filter(image=image).values_list("category_id", flat=True)
        )
        if len(categories) == 1:
            by_class.setdefault(categories.pop(), []).append(image)
    return by_class


def _queries(study: Study, n: int) -> list[QueryImage]:
    """``n`` queries; the 2nd and 3rd of one class (their pools overlap), the others not."""
    by_class = _single_class_images(study)
    shared = next(c for c, images in by_class.items() if len(images) >= 2)
    others = [(c, images[0]) for c, images in by_class.items() if c != shared]
    chosen = [others[0], (shared, by_class[shared][0]), (shared, by_class[shared][1])]
    chosen += others[1 : n - 2]
    assert len(chosen) >= n, "the small archive has too few single-class images"
    return [
        QueryImage.objects.create(study=study, image=image, category_id=category)
        for category, image in chosen[:n]
    ]


@pytest.fixture
def study(feature_set):
    """Queries q1..q4; pairs (q1 no-XAI, q2 SBSM) and (q3 SBSM, q1 no-XAI); q4 unused."""
    study = _study(feature_set)
    no_xai = Condition.objects.create(study=study, name="no-xai")
    sbsm = Condition.objects.create(
        study=study, name="sbsm", method="sbsm", method_config=dict(CHEAP_SBSM)
    )
    q1, q2, q3, _ = _queries(study, 4)
    TaskPair.objects.create(
        study=study, number=1, query_a=q1, condition_a=no_xai, query_b=q2, condition_b=sbsm
    )
    TaskPair.objects.create(
        study=study, number=2, query_a=q3, condition_a=sbsm, query_b=q1, condition_b=no_xai
    )
    return study


def expected_pairs(study: Study, names: list[int]) -> set[tuple[int, int]]:
    queries = list(study.queries.order_by("pk"))
    return {
        (queries[i].image_id, result)
        for i in names
        for result in candidate_pool(study=study, query=queries[i])
    }


def stored_pairs() -> list[tuple[int, int]]:
    return list(SaliencyMap.objects.values_list("query_id", "result_id"))


@pytest.fixture
def masked_passes(monkeypatch):
    """Counts SBSM's masked passes (the forward passes over every mask of a result)."""
    calls: list[int] = []
    original = Sbsm.masked_embeddings

    def counting(self, embed, result):
        calls.append(1)
        return original(self, embed, result)

    monkeypatch.setattr(Sbsm, "masked_embeddings", counting)
    return calls


def test_every_with_xai_pool_image_gets_a_map_and_an_overlay_and_no_xai_queries_none(
    study, masked_passes
):
    report = saliency_precompute_study(study=study, sync=True)

    wanted = expected_pairs(study, [1, 2])  # q2 and q3 are used with SBSM
    assert sorted(stored_pairs()) == sorted(wanted)
    assert (report.total, report.existing, report.computed) == (len(wanted), 0, len(wanted))
    assert report.queries_from == "task_pairs"
    # Chunked per result image: one masked pass per distinct result, shared by both queries.
    results = {result for _, result in wanted}
    assert report.chunks == len(results) == len(masked_passes)
    assert len(results) < len(wanted)  # the two pools overlap, so the reuse is exercised
    rows = list(SaliencyMap.objects.all())
    assert all(row.overlay_key and default_storage.exists(row.overlay_key) for row in rows)
    # Drawn in the default style, each map on its own scale, and the style kept on each row.
    assert {row.overlay_config["scale"] for row in rows} == {"map"}
    assert {row.overlay_config["colormap"] for row in rows} == {"jet"}
    assert len({row.vmax for row in rows}) > 1
    assert report.overlays == len(rows)
    queries = list(study.queries.order_by("pk"))
    mapped_queries = {query_id for query_id, _ in stored_pairs()}
    assert queries[0].image_id not in mapped_queries  # q1: no-XAI in both pairs
    assert queries[3].image_id not in mapped_queries  # q4: in no pair


def test_a_rerun_computes_nothing_and_changes_no_row(study, masked_passes):
    saliency_precompute_study(study=study, sync=True)
    before = list(SaliencyMap.objects.order_by("pk").values_list("pk", "created_at", "seconds"))
    overlays = list(SaliencyMap.objects.order_by("pk").values_list("overlay_key", "vmax"))
    masked_passes.clear()

    again = saliency_precompute_study(study=study, sync=True)

    assert (again.computed, again.chunks, again.overlays) == (0, 0, 0)
    assert again.existing == again.total == len(before)
    assert masked_passes == []
    after = list(SaliencyMap.objects.order_by("pk").values_list("pk", "created_at", "seconds"))
    assert after == before
    assert list(SaliencyMap.objects.order_by("pk").values_list("overlay_key", "vmax")) == overlays


def test_a_new_overlay_style_redraws_every_overlay_from_the_stored_maps(study, masked_passes):
    saliency_precompute_study(study=study, sync=True)
    computed_at = list(SaliencyMap.objects.order_by("pk").values_list("pk", "created_at"))
    masked_passes.clear()
    study.spec = {"overlay": {"scale": "study", "alpha": 0.6}}
    study.save(update_fields=["spec"])

    again = saliency_precompute_study(study=study, sync=True)

    rows = list(SaliencyMap.objects.order_by("pk"))
    assert (again.computed, again.overlays) == (0, len(rows))
    assert masked_passes == []  # nothing recomputed: drawn from the stored raw maps
    assert list(SaliencyMap.objects.order_by("pk").values_list("pk", "created_at")) == computed_at
    # One range for every map of the study and condition, stored with each overlay.
    assert len({(row.overlay_config["vmin"], row.overlay_config["vmax"]) for row in rows}) == 1
    assert {(row.overlay_config["scale"], row.overlay_config["alpha"]) for row in rows} == {
        ("study", 0.6)
    }


def test_a_bad_overlay_setting_is_named_before_any_map_is_computed(study):
    study.spec = {"overlay": {"scale": "image"}}
    study.save(update_fields=["spec"])

    with pytest.raises(ValueError, match="overlay scale"):
        saliency_precompute_study(study=study, sync=True)

    assert not SaliencyMap.objects.exists()


class Stop(Exception):
    pass


def test_a_run_killed_midway_resumes_and_finishes_without_duplicates(study):
    seen = []

    def stop_after_five(done, total):
        seen.append(done)
        if done == 5:
            raise Stop

    with pytest.raises(Stop):
        saliency_precompute_study(study=study, sync=True, progress=stop_after_five)

    assert SaliencyMap.objects.count() == 5  # every finished map was committed
    assert not SaliencyMap.objects.exclude(overlay_key="").exists()  # rendered only at the end
    assert saliency_progress(study=study) == (5, len(expected_pairs(study, [1, 2])))

    resumed = saliency_precompute_study(study=study, sync=True)

    pairs = stored_pairs()
    assert len(pairs) == len(set(pairs)) == resumed.total
    assert set(pairs) == expected_pairs(study, [1, 2])
    assert (resumed.existing, resumed.computed) == (5, resumed.total - 5)
    assert seen[:6] == [0, 1, 2, 3, 4, 5]
    assert saliency_progress(study=study) == (resumed.total, resumed.total)


def test_a_study_without_task_pairs_precomputes_every_query(feature_set):
    study = _study(feature_set, slug="no-pairs")
    Condition.objects.create(study=study, name="no-xai")
    Condition.objects.create(study=study, name="sbsm", method="sbsm", method_config=CHEAP_SBSM)
    _queries(study, 2)

    plan = saliency_plan(study=study)

    assert plan.queries_from == "all_queries"
    assert plan.total == len(expected_pairs(study, [0, 1]))


def test_the_overlay_key_is_none_until_rendered_and_for_no_xai(study):
    sbsm = study.conditions.get(name="sbsm")
    no_xai = study.conditions.get(name="no-xai")
    q2 = study.queries.order_by("pk")[1]
    result = candidate_pool(study=study, query=q2)[0]
    ask = {"study": study, "query_image_id": q2.image_id, "result_image_id": result}
    assert saliency_overlay_key(condition=sbsm, **ask) is None

    saliency_precompute_study(study=study, sync=True)

    key = saliency_overlay_key(condition=sbsm, **ask)
    row = SaliencyMap.objects.get(query_id=q2.image_id, result_id=result)
    assert key == row.overlay_key
    assert default_storage.exists(key)
    assert saliency_overlay_key(condition=no_xai, **ask) is None
    pool = candidate_pool(study=study, query=q2)
    keys = saliency_overlay_keys(
        study=study, condition=sbsm, query_image_id=q2.image_id, result_image_ids=pool
    )
    assert list(keys) == pool
    assert all(keys.values())
    # A condition with another config does not see these maps.
    other = Condition.objects.create(
        study=study, name="sbsm-l2", method="sbsm", method_config={**CHEAP_SBSM, "distance": "l2"}
    )
    assert saliency_overlay_key(condition=other, **ask) is None


def test_a_bad_method_config_is_named_and_nothing_is_written(study):
    Condition.objects.filter(study=study, name="sbsm").update(
        method_config={**CHEAP_SBSM, "stride": 0}
    )

    with pytest.raises(ValueError, match=r"tiny/sbsm.*stride"):
        saliency_precompute_study(study=study, sync=True)

    assert not SaliencyMap.objects.exists()


def test_queued_precompute_runs_after_commit_as_a_chord_of_gpu_chunks_then_overlays(
    study, django_capture_on_commit_callbacks
):
    # Eager Celery (no broker in tests): the smoke test of the task graph.
    from explain.tasks import saliency_overlays_render, saliency_precompute_chunk
    from studyplatform.celery import app

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = saliency_precompute_study(study=study)
    assert report.enqueued
    assert report.computed == 0
    assert not SaliencyMap.objects.exists()  # nothing runs before the commit

    for callback in callbacks:
        callback()

    assert sorted(stored_pairs()) == sorted(expected_pairs(study, [1, 2]))
    assert not SaliencyMap.objects.filter(overlay_key="").exists()
    route = app.amqp.router.route
    assert route({}, saliency_precompute_chunk.name)["queue"].name == "gpu"
    assert route({}, saliency_overlays_render.name)["queue"].name == "default"
    assert saliency_precompute_chunk.acks_late
    assert saliency_precompute_chunk.reject_on_worker_lost


def test_the_command_computes_in_process_and_a_rerun_computes_nothing(study):
    out, err = StringIO(), StringIO()
    call_command("precompute_saliency", "--study", "tiny", "--sync", stdout=out, stderr=err)
    total = len(expected_pairs(study, [1, 2]))
    assert f"{total} maps" in out.getvalue()
    assert f"0 existed, {total} computed" in out.getvalue()
    assert f"{total}/{total}" in err.getvalue()  # the progress bar

    again = StringIO()
    call_command("precompute_saliency", "--study", "tiny", "--sync", stdout=again, stderr=err)
    assert f"{total} existed, 0 computed" in again.getvalue()


@pytest.mark.django_db(transaction=True)
def test_the_command_queues_and_follows_progress(study):
    out = StringIO()
    # Autocommit, so the work is queued at once; eager Celery runs it in the call, and the
    # command's first poll sees it finished.
    call_command("precompute_saliency", "--study", "tiny", stdout=out, stderr=StringIO())
    total = len(expected_pairs(study, [1, 2]))
    assert f"now {total} maps and {total} overlays of {total}" in out.getvalue()


def test_the_command_names_an_unknown_study():
    with pytest.raises(CommandError, match="no study with slug 'nope'"):
        call_command("precompute_saliency", "--study", "nope", "--sync")


def test_the_admin_filters_maps_by_study_and_shows_its_progress(admin_client, study):
    saliency_precompute_study(study=study, sync=True)
    total = len(expected_pairs(study, [1, 2]))
    other = _study(study.feature_set, slug="other")

    body = admin_client.get(f"/admin/explain/saliencymap/?study={study.pk}").content.decode()
    empty = admin_client.get(f"/admin/explain/saliencymap/?study={other.pk}").content.decode()

    assert f"Study tiny: {total} of {total} saliency maps computed, {total} overlays" in body
    assert body.count('alt="saliency overlay"') == min(total, 100)
    assert saliency_maps_of_study(study=study).count() == total
    assert 'alt="saliency overlay"' not in empty
