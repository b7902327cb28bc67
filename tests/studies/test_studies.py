"""Studies from specs: creation, the demo fixture, export round trip, status changes, command."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from retrieval.models import Annotation
from retrieval.services.features import feature_set_create, feature_set_extract
from studyplatform.studies.models import (
    Condition,
    QueryImage,
    Question,
    Questionnaire,
    Study,
    TaskPair,
)
from studyplatform.studies.services.specs import (
    StudySpecError,
    study_spec_dump,
    study_spec_load,
    study_spec_validate,
)
from studyplatform.studies.services.studies import (
    StudyStatusError,
    study_create_from_spec,
    study_spec_export,
    study_status_set,
)

from .conftest import DEMO_SPEC, FIXTURE_BACKBONE

pytestmark = pytest.mark.django_db


def test_the_demo_study_is_live_with_its_conditions_queries_and_pairs(demo_study):
    conditions = list(demo_study.conditions.order_by("id"))
    queries = list(QueryImage.objects.filter(study=demo_study).select_related("category"))

    assert demo_study.status == Study.Status.LIVE
    assert [(c.name, c.method) for c in conditions] == [("no-xai", ""), ("sbsm", "sbsm")]
    assert conditions[1].method_config == {
        "method": "sbsm",
        "block": 32,
        "stride": 16,
        "batch_size": 49,
    }
    assert len(queries) == 12
    assert sorted({q.category.name for q in queries}) == sorted(
        ["microwave", "sink", "book", "cake", "laptop", "orange"]
    )
    assert all(
        Annotation.objects.filter(image=q.image, category=q.category).exists() for q in queries
    )
    assert TaskPair.objects.filter(study=demo_study).count() == 12
    assert (demo_study.target_count, demo_study.repetitions) == (4, 2)


def test_every_demo_pair_puts_two_classes_under_no_xai_then_sbsm(demo_study):
    pairs = TaskPair.objects.filter(study=demo_study).select_related(
        "query_a", "query_b", "condition_a", "condition_b"
    )

    for pair in pairs:
        assert pair.query_a.category_id != pair.query_b.category_id
        assert (pair.condition_a.name, pair.condition_b.name) == ("no-xai", "sbsm")


def test_the_demo_questionnaires_are_built_in_order(demo_study):
    kinds = [
        (q.kind, q.for_xai, list(q.questions.values_list("code", flat=True)))
        for q in Questionnaire.objects.filter(study=demo_study).order_by("id")
    ]

    assert kinds == [
        ("subtask", False, ["easy_to_judge", "results_improved"]),
        ("subtask", True, ["easy_to_judge", "results_improved", "maps_understand"]),
        ("final", None, ["prefer_with_maps", "comments"]),
    ]
    comment = Question.objects.get(questionnaire__study=demo_study, code="comments")
    assert (comment.scale, comment.required) == ("text", False)


def test_the_fixture_features_equal_a_real_extraction(demo_feature_set, small_archive, settings):
    from retrieval.selectors.features import feature_set_arrays

    copied, copied_ids = feature_set_arrays(feature_set=demo_feature_set)
    copied, copied_ids = np.array(copied), np.array(copied_ids)
    demo_feature_set.delete()
    real, _ = feature_set_create(
        archive=small_archive, backbone_config=FIXTURE_BACKBONE, enqueue=False
    )
    settings.DATA_DIR = settings.DATA_DIR.parent / "real"
    real = feature_set_extract(feature_set=real)
    features, ids = feature_set_arrays(feature_set=real)

    assert np.array_equal(ids, copied_ids)
    assert np.allclose(features, copied, atol=1e-6)


def test_export_of_a_created_study_loads_back_to_the_same_spec(demo_feature_set, demo_spec):
    normalised = study_spec_load(study_spec_dump(study_spec_validate(demo_spec)))
    study = study_create_from_spec(spec=demo_spec)

    exported = study_spec_export(study=study)

    assert exported == normalised
    assert study_spec_load(study_spec_dump(exported)) == normalised
    assert study.spec == normalised


def test_the_demo_spec_file_loads_from_its_path_once_the_archive_exists(demo_feature_set):
    demo_feature_set.archive.name = "synthetic-demo"
    demo_feature_set.archive.save()

    spec = study_spec_load(str(DEMO_SPEC))

    assert spec["archive"] == "synthetic-demo"
    assert spec["feature_set"]["backbone"]["name"] == "synthnet"
    assert len(spec["queries"]) == 12
    assert spec["task_pairs"] == {"count": 12, "design": "control_vs_treatment"}


def test_a_bad_spec_writes_nothing_even_late_in_creation(demo_feature_set, demo_spec):
    demo_spec["queries"] = {"classes": ["cake", "laptop"], "per_class": 1}
    demo_spec["task_pairs"] = {"count": 1, "design": "all_pairs"}
    demo_spec["conditions"].append({"name": "sbsm-2", "method": "sbsm"})
    study_create_from_spec(spec=demo_spec)  # valid: 3 conditions, all pairs

    with pytest.raises(StudySpecError, match=r"^slug: "):
        study_create_from_spec(spec=demo_spec)

    assert Study.objects.count() == 1
    assert Condition.objects.count() == 3
    assert TaskPair.objects.count() == 3


def test_a_second_study_with_the_same_slug_is_refused_and_nothing_is_added(demo_study, demo_spec):
    before = (QueryImage.objects.count(), TaskPair.objects.count(), Condition.objects.count())

    with pytest.raises(StudySpecError, match=r"^slug: .*exists"):
        study_create_from_spec(spec=demo_spec)

    after = (QueryImage.objects.count(), TaskPair.objects.count(), Condition.objects.count())
    assert after == before
    assert Study.objects.count() == 1


def test_status_moves_draft_ready_live_closed_and_nothing_else(demo_feature_set, demo_spec):
    study = study_create_from_spec(spec=demo_spec)
    assert study.status == "draft"

    with pytest.raises(StudyStatusError, match="cannot go from draft to live"):
        study_status_set(study=study, status="live")
    for status in ("ready", "live", "closed"):
        study_status_set(study=study, status=status)
        assert Study.objects.get(pk=study.pk).status == status
    with pytest.raises(StudyStatusError, match="from closed"):
        study_status_set(study=study, status="live")
    with pytest.raises(StudyStatusError, match="unknown status"):
        study_status_set(study=study, status="paused")

    assert Study.objects.get(pk=study.pk).status == "closed"


def test_a_study_without_task_pairs_cannot_be_ready(demo_feature_set, demo_spec):
    study = study_create_from_spec(spec=demo_spec)
    TaskPair.objects.filter(study=study).delete()

    with pytest.raises(StudyStatusError, match="no task pairs"):
        study_status_set(study=study, status="ready")

    assert Study.objects.get(pk=study.pk).status == "draft"


def test_a_study_whose_features_are_not_extracted_cannot_be_ready(demo_feature_set, demo_spec):
    demo_feature_set.status = "pending"
    demo_feature_set.save()
    study = study_create_from_spec(spec=demo_spec)

    with pytest.raises(StudyStatusError, match="not done"):
        study_status_set(study=study, status="ready")


def test_the_command_creates_the_study_and_prints_a_summary(demo_feature_set, tmp_path):
    spec = DEMO_SPEC.read_text().replace("archive: synthetic-demo", "archive: synth")
    path = tmp_path / "demo.yaml"
    path.write_text(spec)
    out = StringIO()

    call_command("create_study", str(path), stdout=out)

    assert "Study 'demo' created (draft)" in out.getvalue()
    assert "task pairs:   12" in out.getvalue()
    assert Study.objects.get(slug="demo").task_pairs.count() == 12


def test_the_command_names_the_bad_field_and_writes_nothing(demo_feature_set, tmp_path):
    spec = DEMO_SPEC.read_text().replace("archive: synthetic-demo", "archive: synth")
    path = tmp_path / "demo.yaml"
    path.write_text(spec.replace("method: sbsm", "method: nosuchmethod"))

    with pytest.raises(CommandError, match=r"conditions\[1\]\.method: unknown method"):
        call_command("create_study", str(path), stdout=StringIO())

    assert not Study.objects.exists()


def test_the_command_check_option_validates_without_writing(demo_feature_set, tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text(DEMO_SPEC.read_text().replace("archive: synthetic-demo", "archive: synth"))
    out = StringIO()

    call_command("create_study", str(path), "--check", stdout=out)

    assert "valid (12 queries)" in out.getvalue()
    assert not Study.objects.exists()


@pytest.mark.slow
def test_the_seed_001_spec_builds_its_protocol_on_a_2000_image_archive(synthetic_archive_2000):
    from retrieval.services import archive_import_coco

    from .conftest import SEED001_SPEC

    archive = archive_import_coco(
        archive_name="coco2017",
        instances_path=synthetic_archive_2000 / "instances.json",
        image_dir=synthetic_archive_2000 / "images",
    ).archive
    # Only the row is needed to build a draft: the features are extracted before "ready".
    feature_set_create(
        archive=archive,
        backbone_config={"name": "resnet50", "layer": "avgpool", "weights": "imagenet"},
        enqueue=False,
    )

    study = study_create_from_spec(spec=study_spec_load(str(SEED001_SPEC)))

    queries = QueryImage.objects.filter(study=study)
    pairs = TaskPair.objects.filter(study=study).select_related("query_a", "query_b")
    assert queries.count() == 160
    assert queries.values("category").distinct().count() == 24
    assert pairs.count() == 148
    assert all(p.query_a.category_id != p.query_b.category_id for p in pairs)
    assert len({p.query_a_id for p in pairs}) == len({p.query_b_id for p in pairs}) == 148
    assert (study.target_count, study.iqr_rounds, study.results_per_round) == (12, 2, 20)
    assert study.repetitions == 3
    assert study.mturk["qualifications"] == {
        "locales": ["US", "CA"],
        "approved_hits_at_least": 1000,
        "approval_rate_above": 97,
        "exclude_participated": True,
        "exclude_participated_any_study": False,
        "masters": False,
        "custom": [],
    }
    statements = set(
        Question.objects.filter(questionnaire__study=study).values_list("text", flat=True)
    )
    assert "Overall, I feel saliency maps helped me give better feedback." in statements
    assert (
        "If given the option to redo the task, I would prefer to do it with saliency maps "
        "rather than without saliency maps." in statements
    )
    scales = set(
        Question.objects.filter(questionnaire__study=study, required=True).values_list(
            "scale", flat=True
        )
    )
    assert scales == {"likert6"}
    assert study_spec_export(study=study) == study.spec
