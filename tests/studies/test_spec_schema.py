"""The study spec's one schema: composed from the apps' blocks, refusing what MTurk would
refuse at creation, and documented by a reference generated from it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from analysis.spec import AnalysisSpec
from explain.spec import OverlaySpec
from mturk.spec import CustomQualification, MTurkSpec, Qualifications
from studyplatform.studies.models import Condition, Study
from studyplatform.studies.services.specs import (
    StudySpecError,
    study_spec_check,
    study_spec_validate,
)
from studyplatform.studies.spec_reference import study_spec_reference
from studyplatform.studies.spec_schema import (
    _BLOCKS,
    ConditionSpec,
    QueriesDrawn,
    QueryListed,
    QuestionnaireSpec,
    QuestionSpec,
    Sizes,
    Superclasses,
    TaskPairs,
    _composed,
    spec_block_register,
    spec_blocks,
    study_spec_model,
)
from studyplatform.studies.spec_types import SpecModel

from .conftest import DEMO_SPEC

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted((ROOT / "fixtures" / "studies").glob("*.yaml"))
CORE_MODELS = [
    Sizes,
    ConditionSpec,
    QueriesDrawn,
    QueryListed,
    TaskPairs,
    QuestionnaireSpec,
    QuestionSpec,
    Superclasses,
]
BOGUS = {"qualification_type_id": "3CUSTOM", "comparator": "Bogus", "integer_values": [1]}


def test_the_checked_in_reference_is_what_the_schema_gives():
    checked_in = (ROOT / "docs" / "study-spec.md").read_text(encoding="utf-8")

    assert checked_in == study_spec_reference(), (
        "docs/study-spec.md is out of date: run manage.py study_spec_reference"
    )


def test_the_reference_command_writes_and_checks_the_page(tmp_path):
    page = tmp_path / "spec.md"

    with pytest.raises(CommandError, match="out of date"):
        call_command("study_spec_reference", "--check", "--output", str(page))
    call_command("study_spec_reference", "--output", str(page))
    call_command("study_spec_reference", "--check", "--output", str(page))
    page.write_text(page.read_text() + "a hand edit\n")
    with pytest.raises(CommandError, match="out of date"):
        call_command("study_spec_reference", "--check", "--output", str(page))


def test_the_reference_names_every_field_of_every_block():
    reference = study_spec_reference()

    models = [study_spec_model(), *CORE_MODELS, MTurkSpec, Qualifications, CustomQualification]
    for model in [*models, AnalysisSpec]:
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in reference, name
    assert "At `mturk.qualifications.custom[]`." in reference


def test_the_blocks_come_from_their_apps():
    assert {name: block.model for name, block in spec_blocks().items()} == {
        "analysis": AnalysisSpec,
        "mturk": MTurkSpec,
        "overlay": OverlaySpec,
    }


def test_the_spec_modules_of_the_core_import_none_of_the_apps_above_it():
    core = ROOT / "studyplatform" / "studies"
    above = {"mturk", "explain", "analysis"}
    modules = ["spec_schema.py", "spec_types.py", "spec_reference.py", "services/specs.py"]
    for path in [core / name for name in modules]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in above, f"{path}: {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] not in above, f"{path}: {alias.name}"


class _Extra(SpecModel):
    """A block of a test app."""

    level: int = 1


@pytest.fixture
def extra_block():
    spec_block_register(name="extra", model=_Extra, description="A test block.")
    yield
    del _BLOCKS["extra"]
    _composed.cache_clear()


def test_a_registered_block_is_checked_and_normalised(extra_block):
    spec = yaml.safe_load(DEMO_SPEC.read_text())

    assert study_spec_check({**spec, "extra": {"level": 4}}).model_dump()["extra"] == {"level": 4}
    assert study_spec_check(spec).model_dump()["extra"] == {}
    with pytest.raises(StudySpecError, match=r"^extra\.level: must be an integer, got '4'"):
        study_spec_check({**spec, "extra": {"level": "4"}})


def test_a_block_cannot_take_a_core_field_or_another_blocks_name():
    with pytest.raises(ValueError, match="field of the study spec's core"):
        spec_block_register(name="sizes", model=_Extra, description="")
    with pytest.raises(ValueError, match="registered already"):
        spec_block_register(name="mturk", model=_Extra, description="")


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_fixture_spec_passes_the_schema_and_keeps_its_values(path):
    data = yaml.safe_load(path.read_text())

    normalised = study_spec_check(data).model_dump(mode="json", by_alias=True)

    assert study_spec_check(normalised).model_dump(mode="json", by_alias=True) == normalised
    for key in ("slug", "title", "distance", "repetitions", "seed"):
        assert normalised[key] == data[key]
    assert normalised["sizes"] == data["sizes"]
    assert normalised["mturk"]["reward"] == data["mturk"]["reward"]
    assert normalised["mturk"]["qualifications"]["locales"] == ["US", "CA"]


def test_every_problem_is_listed_not_only_the_first():
    spec = yaml.safe_load(DEMO_SPEC.read_text())
    spec["repetitions"] = 0
    spec["mturk"]["qualifications"]["custom"] = [BOGUS]

    with pytest.raises(StudySpecError) as caught:
        study_spec_check(spec)

    assert caught.value.problems == [
        ("repetitions", "must be >= 1, got 0"),
        (
            "mturk.qualifications.custom[0].comparator",
            "must be one of 'LessThan', 'LessThanOrEqualTo', 'GreaterThan', "
            "'GreaterThanOrEqualTo', 'EqualTo', 'NotEqualTo', 'Exists', 'DoesNotExist', 'In' or "
            "'NotIn', got 'Bogus'",
        ),
    ]
    assert str(caught.value).startswith("repetitions: must be >= 1, got 0 (and 1 more")


@pytest.mark.django_db
@pytest.mark.parametrize("form", ["json", "yaml"])
def test_the_api_refuses_a_bogus_comparator_at_creation(
    admin_client, demo_feature_set, demo_spec, form
):
    demo_spec["mturk"]["qualifications"]["custom"] = [BOGUS]
    body = {"spec": demo_spec} if form == "json" else {"yaml": yaml.safe_dump(demo_spec)}

    response = admin_client.post("/api/studies/", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["field"] == "mturk.qualifications.custom[0].comparator"
    assert "'Bogus'" in response.json()["detail"]
    assert response.json()["problems"][0]["field"] == "mturk.qualifications.custom[0].comparator"
    assert not Study.objects.exists()
    assert not Condition.objects.exists()


@pytest.mark.django_db
def test_the_command_refuses_a_bogus_comparator_and_writes_nothing(
    tmp_path, demo_feature_set, demo_spec
):
    demo_spec["mturk"]["qualifications"]["custom"] = [BOGUS]
    path = tmp_path / "bogus.yaml"
    path.write_text(yaml.safe_dump(demo_spec))

    with pytest.raises(CommandError, match=r"mturk\.qualifications\.custom\[0\]\.comparator"):
        call_command("create_study", str(path))

    assert not Study.objects.exists()


@pytest.mark.django_db
def test_the_normalised_mturk_block_is_what_hit_settings_reads(demo_feature_set, demo_spec):
    from mturk.services.hit_settings import hit_settings_from_study

    demo_spec["mturk"]["qualifications"]["custom"] = [
        {"qualification_type_id": "3CUSTOM", "comparator": "In", "integer_values": [1, 2]}
    ]
    normalised = study_spec_validate(demo_spec)

    class Stored:
        slug = "demo"
        mturk = normalised["mturk"]

    settings = hit_settings_from_study(Stored)
    assert normalised["mturk"]["qualifications"]["custom"] == [
        {"qualification_type_id": "3CUSTOM", "comparator": "In", "integer_values": [1, 2]}
    ]
    assert settings.custom == [
        {
            "QualificationTypeId": "3CUSTOM",
            "Comparator": "In",
            "ActionsGuarded": "Accept",
            "IntegerValues": [1, 2],
        }
    ]
