"""Small studies for the worker-page tests, built row by row on the 120-image synthetic archive.

``hit_study``: two queries of different classes, a no-XAI and an SBSM condition, one task pair,
a sub-task questionnaire for both conditions plus one for with-XAI only, and a final one with a
free-text question; target 3, 2 refines, 6 results per round, pools of 24.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from explain.models import SaliencyMap
from explain.selectors import condition_method_config
from retrieval.models import Annotation, FeatureSet, Image
from retrieval.services.features import feature_set_create, feature_set_extract
from studyplatform.studies.models import (
    Assignment,
    Condition,
    Participant,
    QueryImage,
    Question,
    Questionnaire,
    SearchTask,
    Study,
    TaskPair,
)
from studyplatform.studies.selectors.pools import candidate_pool

FIXTURE = {"name": "synthnet", "weights": "fixture", "image_size": 128}
SBSM = {"method": "sbsm", "block": 32, "stride": 16, "distance": "hik", "fill": "blur"}
MTURK = {"turk_submit_to": "https://workersandbox.mturk.com", "hit_id": "HIT1"}


# Feature files extracted once per test process, reused by every test's fresh archive rows (the
# rows follow the archive's images in primary-key order, the same in every test).
_EXTRACTED: dict = {}


@pytest.fixture
def hit_feature_set(small_archive, settings, tmp_path):
    """The fixture backbone's feature set of the 120-image archive, status done."""
    settings.DATA_DIR = tmp_path / "data"
    settings.SALIENCY_CACHE_DIR = tmp_path / "cache"
    feature_set, _ = feature_set_create(
        archive=small_archive, backbone_config=FIXTURE, enqueue=False
    )
    _extracted = _EXTRACTED
    if "folder" not in _extracted:
        _extracted["folder"] = Path(tempfile.mkdtemp(prefix="hit-features-"))
    cached = _extracted.get("fields")
    if cached is None:
        feature_set = feature_set_extract(feature_set=feature_set)
        # The feature files and the folder of their HIK codes.
        shutil.copytree(feature_set.features_path.parent, _extracted["folder"], dirs_exist_ok=True)
        _extracted["fields"] = {
            name: getattr(feature_set, name)
            for name in ("status", "dim", "rows_done", "weights_sha256", "seconds")
        }
        return feature_set
    target = feature_set.features_path.parent
    target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(_extracted["folder"], target, dirs_exist_ok=True)
    ids = Image.objects.filter(archive=small_archive).order_by("pk").values_list("pk", flat=True)
    np.save(feature_set.ids_path, np.array(list(ids), dtype=np.int64))
    FeatureSet.objects.filter(pk=feature_set.pk).update(**cached)
    feature_set.refresh_from_db()
    return feature_set


def _two_queries(archive) -> list[Annotation]:
    seen: dict[int, Annotation] = {}
    for annotation in Annotation.objects.filter(archive=archive).order_by("image_id", "pk"):
        if annotation.category_id not in seen and annotation.image_id not in {
            a.image_id for a in seen.values()
        }:
            seen[annotation.category_id] = annotation
        if len(seen) == 2:
            break
    return list(seen.values())


def build_study(feature_set, *, slug: str = "hit-demo", status: str = "live") -> Study:
    study = Study.objects.create(
        slug=slug,
        title="Find the objects",
        archive=feature_set.archive,
        feature_set=feature_set,
        target_count=3,
        iqr_rounds=2,
        results_per_round=6,
        candidate_pool_size=24,
        repetitions=3,
        status=status,
        lab_enabled=True,
    )
    plain = Condition.objects.create(study=study, name="no-xai", label="no explanations")
    xai = Condition.objects.create(
        study=study, name="sbsm", label="SBSM", method="sbsm", method_config=SBSM
    )
    queries = [
        QueryImage.objects.create(study=study, image_id=a.image_id, category_id=a.category_id)
        for a in _two_queries(feature_set.archive)
    ]
    TaskPair.objects.create(
        study=study,
        number=1,
        query_a=queries[0],
        condition_a=plain,
        query_b=queries[1],
        condition_b=xai,
    )
    both = Questionnaire.objects.create(study=study, kind="subtask", for_xai=None)
    Question.objects.create(questionnaire=both, code="easy", position=1, text="It was easy.")
    only_xai = Questionnaire.objects.create(study=study, kind="subtask", for_xai=True)
    Question.objects.create(
        questionnaire=only_xai, code="maps-helped", position=1, text="Saliency maps helped me."
    )
    final = Questionnaire.objects.create(study=study, kind="final")
    Question.objects.create(
        questionnaire=final, code="prefer-maps", position=1, text="I would prefer maps."
    )
    Question.objects.create(
        questionnaire=final,
        code="comments",
        position=2,
        text="Anything else?",
        scale="text",
        required=False,
    )
    return study


def build_assignment(
    study: Study, *, worker: str = "WORKER1", order: str = "ab", source: str = "mturk"
) -> Assignment:
    """An active assignment of the study's first task pair, with both search tasks."""
    participant, _ = Participant.objects.get_or_create(source=source, external_id=worker)
    pair = study.task_pairs.first()
    extra = {"mturk_assignment_id": f"ASSIGN-{worker}", **MTURK} if source == "mturk" else {}
    assignment = Assignment.objects.create(
        study=study, participant=participant, task_pair=pair, order=order, **extra
    )
    cells = [(pair.query_a, pair.condition_a), (pair.query_b, pair.condition_b)]
    if order == "ba":
        cells.reverse()
    for position, (query, condition) in enumerate(cells, start=1):
        SearchTask.objects.create(
            assignment=assignment, position=position, query=query, condition=condition
        )
    return assignment


def write_overlays(study: Study, *, limit: int | None = None, skip: int = 0) -> int:
    """SaliencyMap rows with small PNG overlays for the pool images of every query its task
    pairs use under a with-XAI condition (the first ``limit`` of each pool when given, the first
    ``skip`` left without one); a stand-in for the precompute service. Returns the rows made."""
    picture = PILImage.new("RGB", (64, 64), (230, 40, 40))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    made = 0
    used = set()
    for pair in study.task_pairs.select_related("condition_a", "condition_b", "query_a", "query_b"):
        for query, condition in (
            (pair.query_a, pair.condition_a),
            (pair.query_b, pair.condition_b),
        ):
            if condition.is_xai and (query.pk, condition.pk) not in used:
                used.add((query.pk, condition.pk))
                full = condition_method_config(condition)
                pool = candidate_pool(study=study, query=query)[:limit]
                for result_id in pool[skip:]:
                    key = default_storage.save(
                        f"saliency/test/{condition.pk}/{query.image_id}/{result_id}.png",
                        ContentFile(buffer.getvalue()),
                    )
                    SaliencyMap.objects.create(
                        feature_set=study.feature_set,
                        query_id=query.image_id,
                        result_id=result_id,
                        method=condition.method,
                        method_config={**full, "mean": [0.5] * 3, "std": [0.25] * 3},
                        config_key=f"test-{condition.pk}".ljust(64, "0"),
                        raw_key=key.replace(".png", ".npy"),
                        overlay_key=key,
                        map_max=1.0,
                        seconds=0.0,
                    )
                    made += 1
    return made


def refine_now(task, client_event_id: str):
    """``search_task_refine`` with its after-commit hand-over run at once: without a broker the
    round is computed in this process, as in the embedded default (the test's transaction
    never commits, so Django's captured on-commit callbacks stand in for the commit)."""
    from django.test import TestCase

    from studyplatform.studies.services.hit import search_task_refine

    with TestCase.captureOnCommitCallbacks(execute=True):
        return search_task_refine(task=task, client_event_id=client_event_id)
