"""Study specs: every field validated, errors naming the field, nothing written on error."""

from __future__ import annotations

import copy

import pytest

from retrieval.models import Annotation, Image
from studyplatform.studies.models import Condition, QueryImage, Study
from studyplatform.studies.services.specs import (
    StudySpecError,
    study_spec_dump,
    study_spec_load,
    study_spec_validate,
)
from studyplatform.studies.services.studies import study_create_from_spec

pytestmark = pytest.mark.django_db


def cake_image(archive, *, holding=True):
    """A (file name, COCO id) of an image with (or without) a cake."""
    cakes = Annotation.objects.filter(archive=archive, category__name="cake").values("image")
    images = Image.objects.filter(archive=archive)
    image = (images.filter(pk__in=cakes) if holding else images.exclude(pk__in=cakes)).first()
    return image.file_name, image.coco_id


def _set(path, value):
    def change(spec, archive):
        target = spec
        *parents, last = path
        for key in parents:
            target = target[key]
        target[last] = value(archive) if callable(value) else value

    return change


def _delete(key):
    def change(spec, archive):
        del spec[key]

    return change


def _add_condition(spec, archive):
    spec["conditions"].append({"name": "no-xai", "method": "rise"})


def _listed_queries(holding):
    def change(spec, archive):
        file_name, _ = cake_image(archive, holding=holding)
        spec["queries"] = [
            {"image": file_name, "class": "cake"},
            {"image_id": 999999, "class": "cake"},
        ]

    return change


def _custom_qualification(item):
    def change(spec, archive):
        spec["mturk"]["qualifications"]["custom"] = [
            {"qualification_type_id": "3GOOD", "comparator": "EqualTo", "integer_values": [1]},
            {"qualification_type_id": "3CUSTOM", **item},
        ]

    return change


def _second_xai_subtask(spec, archive):
    spec["questionnaires"].append(copy.deepcopy(spec["questionnaires"][1]))


BAD = {
    "missing title": (_delete("title"), r"^title: is required"),
    "unknown field": (_set(["titel"], "x"), r"unknown field\(s\) \['titel'\]"),
    "bad slug": (_set(["slug"], "no spaces"), r"^slug: must hold only"),
    "unknown archive": (_set(["archive"], "nowhere"), r"^archive: no archive named 'nowhere'"),
    "unknown backbone": (
        _set(["feature_set", "backbone", "name"], "nosuchnet"),
        r"^feature_set\.backbone: .*nosuchnet",
    ),
    "features not extracted": (
        _set(["feature_set", "backbone", "weights"], "none"),
        r"^feature_set: archive 'synth' has no feature set .*extract_features",
    ),
    "unknown feature set id": (_set(["feature_set"], 999999), r"^feature_set: .*id 999999"),
    "bad distance": (_set(["distance"], "manhattan"), r"^distance: must be one of"),
    "zero target": (_set(["sizes", "target_count"], 0), r"^sizes\.target_count: must be >= 1"),
    "target not an integer": (
        _set(["sizes", "target_count"], "12"),
        r"^sizes\.target_count: must be an integer",
    ),
    "pool below a round": (
        _set(["sizes", "candidate_pool_size"], 5),
        r"^sizes\.candidate_pool_size: 5 is smaller than results_per_round",
    ),
    "pool beyond the archive": (
        _set(["sizes", "candidate_pool_size"], 500),
        r"^sizes\.candidate_pool_size: 500 is more than the archive's 120",
    ),
    "target beyond a class": (
        _set(["sizes", "target_count"], 9),
        r"^queries\[\d+\]\.class: class '\w+' is in \d image\(s\).*target_count = 9",
    ),
    "zero repetitions": (_set(["repetitions"], 0), r"^repetitions: must be >= 1, got 0"),
    "one condition": (
        _set(["conditions"], [{"name": "no-xai"}]),
        r"^conditions: needs at least 2",
    ),
    "unknown method": (
        _set(["conditions", 1, "method"], "nosuchmethod"),
        r"^conditions\[1\]\.method: unknown method 'nosuchmethod'",
    ),
    "unknown method parameter": (
        _set(["conditions", 1, "config"], {"blok": 3}),
        r"^conditions\[1\]\.config: unknown parameters \['blok'\]",
    ),
    "method parameter out of range": (
        _set(["conditions", 1, "config"], {"block": 8, "stride": 16}),
        r"^conditions\[1\]\.config: .*stride",
    ),
    "config on no-XAI": (
        _set(["conditions", 0, "config"], {"block": 8}),
        r"^conditions\[0\]\.config: a no-XAI condition takes no config",
    ),
    "condition name twice": (
        _add_condition,
        r"^conditions\[2\]\.name: 'no-xai' is used twice",
    ),
    "unknown query class": (
        _set(["queries", "classes", 0], "unicorn"),
        r"^queries\.classes\[0\]: the archive has no class named 'unicorn'",
    ),
    "too many per class": (
        _set(["queries", "per_class"], 50),
        r"^queries: class '\w+' has \d+ image\(s\) free to be queries, 50 wanted",
    ),
    "per_class and total": (
        _set(["queries", "total"], 12),
        r"^queries: give either per_class or total",
    ),
    "image without the class": (
        _listed_queries(holding=False),
        r"^queries\[0\]\.class: image \S+ holds no 'cake' instance",
    ),
    "unknown image": (
        _listed_queries(holding=True),
        r"^queries\[1\]\.image_id: archive 'synth' has no such image",
    ),
    "bad design": (
        _set(["task_pairs"], {"design": "latin_square"}),
        r"^task_pairs\.design: must be one of",
    ),
    "bad scale": (
        _set(["questionnaires", 0, "questions", 0, "scale"], "likert7"),
        r"^questionnaires\[0\]\.questions\[0\]\.scale: must be one of",
    ),
    "two with-XAI sub-task questionnaires": (
        _second_xai_subtask,
        r"^questionnaires\[3\]: questionnaires\[1\] already covers these workers",
    ),
    "final questionnaire for one kind": (
        _set(["questionnaires", 2, "for"], "xai"),
        r"^questionnaires\[2\]\.for: the final questionnaire is for every worker",
    ),
    "superclass not a query class": (
        _set(["superclasses"], {"cluttered": ["spoon"], "large": ["cake"]}),
        r"^superclasses\.cluttered\[0\]: 'spoon' is not a query class",
    ),
    "mturk without reward": (_set(["mturk"], {"title": "t"}), r"^mturk\.reward: is required"),
    "mturk reward in fractions of a cent": (
        _set(["mturk"], {"title": "t", "reward": "0.125"}),
        r"^mturk\.reward: '0\.125' is not an amount in dollars with at most two decimals",
    ),
    "mturk locale": (
        _set(["mturk"], {"title": "t", "reward": "1.00", "qualifications": {"locales": ["usa"]}}),
        r"^mturk\.qualifications\.locales\[0\]: must be an ISO 3166",
    ),
    "mturk approval rate": (
        _set(
            ["mturk"],
            {"title": "t", "reward": "1.00", "qualifications": {"approval_rate_above": 100}},
        ),
        r"^mturk\.qualifications\.approval_rate_above: must be <= 99, got 100",
    ),
    "tutorial not a mapping": (_set(["tutorial"], ["x"]), r"^tutorial: must be a mapping"),
    "mturk comparator MTurk does not know": (
        _custom_qualification({"comparator": "Bogus", "integer_values": [1]}),
        r"^mturk\.qualifications\.custom\[1\]\.comparator: must be one of 'LessThan'.*'Bogus'",
    ),
    "mturk comparator without its value": (
        _custom_qualification({"comparator": "GreaterThanOrEqualTo"}),
        r"^mturk\.qualifications\.custom\[1\]\.integer_values: GreaterThanOrEqualTo needs "
        r"exactly one value, got 0",
    ),
    "mturk values on Exists": (
        _custom_qualification({"integer_values": [3]}),
        r"^mturk\.qualifications\.custom\[1\]\.integer_values: Exists takes no values",
    ),
    "mturk qualification type id": (
        _custom_qualification({"qualification_type_id": "not-an-id"}),
        r"^mturk\.qualifications\.custom\[1\]\.qualification_type_id: must be 1-64 of A-Z",
    ),
    "mturk unknown qualification": (
        _set(["mturk"], {"title": "t", "reward": "1.00", "qualifications": {"locale": ["US"]}}),
        r"^mturk\.qualifications: unknown field\(s\) \['locale'\]; valid: \['approval_rate",
    ),
    "mturk duration beyond a year": (
        _set(["mturk"], {"title": "t", "reward": "1.00", "lifetime_hours": 24 * 366}),
        r"^mturk\.lifetime_hours: must be <= 8760, got 8784",
    ),
    "analysis alternative": (
        _set(["analysis"], {"alternative": "bigger"}),
        r"^analysis\.alternative: must be one of 'greater', 'less' or 'two-sided', got 'bigger'",
    ),
    "analysis group": (
        _set(["analysis"], {"groups": ["Cluttered", "Huge"]}),
        r"^analysis\.groups\[1\]: must be one of 'Cluttered'",
    ),
    "listed query without an image": (
        _set(["queries"], [{"class": "cake"}, {"class": "cake", "image_id": 1}]),
        r"^queries\[0\]: give the image's file name \(image\) or COCO id \(image_id\)",
    ),
    "total below the classes": (
        _set(["queries"], {"classes": ["cake", "book"], "total": 1}),
        r"^queries\.total: must be >= 2",
    ),
    "question code twice": (
        _set(["questionnaires", 0, "questions", 1, "code"], "easy_to_judge"),
        r"^questionnaires\[0\]\.questions\[1\]\.code: 'easy_to_judge' is used twice",
    ),
    "boolean as a number": (_set(["seed"], True), r"^seed: must be an integer, got True"),
}


@pytest.mark.parametrize("case", list(BAD), ids=str)
def test_a_bad_field_is_named_and_nothing_is_written(demo_feature_set, demo_spec, case):
    change, message = BAD[case]
    change(demo_spec, demo_feature_set.archive)

    with pytest.raises(StudySpecError, match=message):
        study_create_from_spec(spec=demo_spec)

    assert not Study.objects.exists()
    assert not Condition.objects.exists()
    assert not QueryImage.objects.exists()


def test_a_spec_that_is_not_a_mapping_is_refused():
    with pytest.raises(StudySpecError, match="must be a mapping, got list"):
        study_spec_load("- a\n- b\n")


def test_invalid_yaml_is_refused_with_its_line():
    with pytest.raises(StudySpecError, match=r"spec is not valid YAML at line 2"):
        study_spec_load("slug: x\ntitle: a: b\n")


def test_a_missing_spec_file_is_named(tmp_path):
    with pytest.raises(StudySpecError, match=r"spec file .*missing\.yaml does not exist"):
        study_spec_load(str(tmp_path / "missing.yaml"))


def test_queries_can_be_listed_by_file_name_or_coco_id(demo_feature_set, demo_spec):
    archive = demo_feature_set.archive
    file_name, coco_id = cake_image(archive)
    laptops = Annotation.objects.filter(archive=archive, category__name="laptop")
    laptop = laptops.select_related("image").first().image
    demo_spec["queries"] = [
        {"image": file_name, "class": "cake"},
        {"image_id": laptop.coco_id, "class": "laptop"},
    ]

    spec = study_spec_validate(demo_spec)

    assert spec["queries"] == [
        {"image_id": coco_id, "image": file_name, "class": "cake"},
        {"image_id": laptop.coco_id, "image": laptop.file_name, "class": "laptop"},
    ]
    assert spec["task_pairs"]["count"] == 2


def test_total_spreads_queries_over_classes_first_classes_first(demo_feature_set, demo_spec):
    demo_spec["queries"] = {"classes": ["book", "cake", "laptop"], "total": 7}

    spec = study_spec_validate(demo_spec)

    per_class = [q["class"] for q in spec["queries"]]
    assert [per_class.count(c) for c in ("book", "cake", "laptop")] == [3, 2, 2]
    assert len({q["image_id"] for q in spec["queries"]}) == 7


def test_sampled_queries_depend_on_the_seed_and_hold_their_class(demo_feature_set, demo_spec):
    first = study_spec_validate(demo_spec)["queries"]
    again = study_spec_validate(demo_spec)["queries"]
    demo_spec["seed"] = 2
    other = study_spec_validate(demo_spec)["queries"]

    assert first == again
    assert first != other
    archive = demo_feature_set.archive
    for query in first:
        assert Annotation.objects.filter(
            archive=archive, image__coco_id=query["image_id"], category__name=query["class"]
        ).exists()


@pytest.mark.parametrize("form", ["name", "id", "key"])
def test_the_feature_set_can_be_named_by_backbone_id_or_key(demo_feature_set, demo_spec, form):
    normalised = study_spec_validate(demo_spec)
    demo_spec["feature_set"] = {
        "name": "synthnet",
        "id": demo_feature_set.pk,
        "key": demo_feature_set.config_key,
    }[form]

    assert study_spec_validate(demo_spec) == normalised
    assert normalised["feature_set"] == {
        "backbone": {
            "name": "synthnet",
            "layer": "avgpool",
            "weights": "fixture",
            "image_size": 128,
        }
    }


def test_a_normalised_spec_validates_to_itself(demo_feature_set, demo_spec):
    demo_spec["mturk"] = {"title": "Find it", "reward": 1.5, "keywords": "a, b"}
    normalised = study_spec_validate(demo_spec)

    assert study_spec_validate(normalised) == normalised
    assert study_spec_load(study_spec_dump(normalised)) == normalised
    assert normalised["mturk"]["reward"] == "1.50"
    assert normalised["mturk"]["keywords"] == ["a", "b"]
    assert normalised["mturk"]["qualifications"]["exclude_participated"] is True


def test_validation_does_not_change_the_given_dict(demo_feature_set, demo_spec):
    before = copy.deepcopy(demo_spec)

    study_spec_validate(demo_spec)

    assert demo_spec == before
