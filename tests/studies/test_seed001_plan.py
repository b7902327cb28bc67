"""Seed 001's study as its spec plans it, on a 2,000-image synthetic archive: 476 HITs, every
task pair done by at least 3 distinct workers, the order of each HIT drawn at random from a
seed kept on the assignment, and no worker meeting a class twice.

Plan-level: workers accept HITs one after another through ``assignment_start`` (the service
the HIT page calls); their searches are not simulated, since the plan does not depend on them.
"""

from __future__ import annotations

from collections import Counter

import pytest

from retrieval.services.features import feature_set_create
from studyplatform.studies.models import Assignment, Study
from studyplatform.studies.services.assignments import (
    AssignmentRefused,
    assignment_start,
    order_draw,
)
from studyplatform.studies.services.specs import study_spec_load
from studyplatform.studies.services.studies import study_create_from_spec

from .conftest import SEED001_SPEC

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def seed001_study(synthetic_archive_2000) -> Study:
    from retrieval.services import archive_import_coco

    archive = archive_import_coco(
        archive_name="coco2017",
        instances_path=synthetic_archive_2000 / "instances.json",
        image_dir=synthetic_archive_2000 / "images",
    ).archive
    feature_set_create(
        archive=archive,
        backbone_config={"name": "resnet50", "layer": "avgpool", "weights": "imagenet"},
        enqueue=False,
    )
    study = study_create_from_spec(spec=study_spec_load(str(SEED001_SPEC)))
    # The assignment rule needs the pairs, not the ResNet50 features "ready" waits for.
    Study.objects.filter(pk=study.pk).update(status=Study.Status.LIVE)
    study.refresh_from_db()
    return study


def test_seed_001_fills_476_hits_each_pair_thrice_in_random_order(seed001_study):
    study = seed001_study
    assert (study.spec["stop"], study.spec["order"], study.spec["hits"]) == (
        "at_least", "random", 476,
    )  # fmt: skip

    for i in range(476):
        assignment_start(study=study, source="mturk", external_id=f"W{i:03d}")
    with pytest.raises(AssignmentRefused) as refused:
        assignment_start(study=study, source="mturk", external_id="W476")
    assert refused.value.reason == "no_cell"

    rows = list(
        Assignment.objects.filter(study=study).values_list(
            "participant_id", "task_pair__number", "order", "order_seed",
            "task_pair__query_a__category_id", "task_pair__query_b__category_id",
        )
    )  # fmt: skip
    assert len(rows) == 476
    workers = Counter(participant for participant, *_ in rows)
    assert set(workers.values()) == {1}  # one HIT each: distinct workers everywhere
    per_pair = Counter(number for _, number, *_ in rows)
    assert len(per_pair) == 148
    assert min(per_pair.values()) >= 3
    assert Counter(per_pair.values()) == {3: 116, 4: 32}
    # random order: drawn from the seed kept on each assignment, not balanced within pairs
    assert all(seed is not None and order == order_draw(seed) for _, _, order, seed, *_ in rows)
    assert len({seed for _, _, _, seed, _, _ in rows}) == 476
    orders = Counter(order for _, _, order, *_ in rows)
    assert 180 < orders["ab"] < 296  # a fair coin over 476 HITs (about 5 sd either side)
    by_cell = Counter((number, order) for _, number, order, *_ in rows)
    imbalance = [abs(by_cell[(n, "ab")] - by_cell[(n, "ba")]) for n in per_pair]
    assert max(imbalance) >= 2  # balanced order could never leave a pair 3 / 0 or 4 / 0
    # no worker meets a class twice: the two tasks of every HIT have different classes
    assert all(class_a != class_b for *_, class_a, class_b in rows)
    tasks = Counter(
        Assignment.objects.filter(study=study).values_list("tasks__position", flat=True)
    )
    assert tasks == {1: 476, 2: 476}
