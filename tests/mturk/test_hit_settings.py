"""The study's HIT settings and the launch arithmetic (no MTurk calls)."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from mturk.services.hit_settings import (
    MTurkSettingsError,
    amount_parse,
    batch_sizes,
    cost_estimate,
    fee,
    hit_settings_from_study,
)
from tests.mturk.conftest import SEED001_MTURK


def study_with(**changes):
    mturk = {**SEED001_MTURK, **changes}
    return SimpleNamespace(slug="s", mturk=mturk)


@pytest.mark.parametrize("total", [1, 9, 10, 17, 18, 19, 100, 952])
def test_batches_hold_every_assignment_and_none_reaches_10(total):
    sizes = batch_sizes(total)
    assert sum(sizes) == total
    assert max(sizes) <= 9
    assert max(sizes) - min(sizes) <= 1
    assert len(sizes) == -(-total // 9)


def test_the_fee_is_20_percent_with_a_one_cent_minimum():
    assert fee(Decimal("1.50")) == Decimal("0.30")
    assert fee(Decimal("0.01")) == Decimal("0.01")
    assert fee(Decimal("0.04")) == Decimal("0.01")


@pytest.mark.parametrize("text", ["0.505", "-1", "abc", "1e3", "", None, "1,50"])
def test_an_amount_that_is_not_whole_cents_is_named(text):
    with pytest.raises(MTurkSettingsError, match=r"mturk\.reward"):
        amount_parse(text, "reward")


def test_the_estimate_adds_rewards_fees_and_planned_bonuses():
    settings = hit_settings_from_study(study_with(planned_bonus="0.50"))
    estimate = cost_estimate(settings=settings, assignments=952)
    assert estimate.rewards_total == Decimal("1428.00")
    assert estimate.fees_total == Decimal("285.60")
    assert estimate.bonuses_total == Decimal("571.20")  # 952 x (0.50 + 0.10)
    assert estimate.total == Decimal("2284.80")


def test_seed_001_filters_become_mturk_requirements():
    settings = hit_settings_from_study(study_with())
    reqs = settings.requirements(environment="sandbox", participated_ids=["3PART"])
    assert [(r["QualificationTypeId"], r["Comparator"]) for r in reqs] == [
        ("00000000000000000071", "In"),
        ("00000000000000000040", "GreaterThanOrEqualTo"),
        ("000000000000000000L0", "GreaterThan"),
        ("3PART", "DoesNotExist"),
    ]


def test_masters_and_custom_qualifications_are_added():
    quals = {
        **SEED001_MTURK["qualifications"],
        "masters": True,
        "custom": [
            {"qualification_type_id": "3CUSTOM", "comparator": "EqualTo", "integer_values": [1]}
        ],
    }
    settings = hit_settings_from_study(study_with(qualifications=quals))
    reqs = settings.requirements(environment="production", participated_ids=[])
    ids = [r["QualificationTypeId"] for r in reqs]
    assert "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH" in ids
    assert reqs[-1] == {
        "QualificationTypeId": "3CUSTOM",
        "Comparator": "EqualTo",
        "ActionsGuarded": "Accept",
        "IntegerValues": [1],
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": ""}, "mturk.title"),
        ({"assignment_duration_minutes": 0}, "mturk.assignment_duration_minutes"),
        ({"frame_height": "tall"}, "mturk.frame_height"),
        ({"qualifications": {"locales": ["usa"]}}, "mturk.qualifications.locales"),
        (
            {"qualifications": {"approval_rate_above": 100}},
            "mturk.qualifications.approval_rate_above",
        ),
        (
            {"qualifications": {"custom": [{"qualification_type_id": "3X", "comparator": "Near"}]}},
            "mturk.qualifications.custom",
        ),
    ],
)
def test_bad_settings_name_their_field(changes, field):
    with pytest.raises(MTurkSettingsError, match=field.replace(".", r"\.")):
        hit_settings_from_study(study_with(**changes))


def _custom(**item):
    return {"qualifications": {"custom": [{"qualification_type_id": "3CUSTOM", **item}]}}


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        (_custom(comparator="Bogus"), "custom[0].comparator", "must be one of 'LessThan'"),
        (_custom(comparator="EqualTo"), "custom[0].integer_values", "exactly one value, got 0"),
        (
            _custom(comparator="GreaterThan", integer_values=[1, 2]),
            "custom[0].integer_values",
            "exactly one value, got 2",
        ),
        (_custom(integer_values=[1]), "custom[0].integer_values", "Exists takes no values"),
        (
            _custom(comparator="In", integer_values=list(range(16))),
            "custom[0].integer_values",
            "In needs 1 to 15 values, got 16",
        ),
        (
            _custom(comparator="EqualTo", integer_values=["1"]),
            "custom[0].integer_values[0]",
            "must be an integer",
        ),
        (_custom(qualification_type_id="3x-y"), "custom[0].qualification_type_id", "A-Z, 0-9"),
        (
            {"qualifications": {"custom": [{"qualification_type_id": "3A"}] * 2}},
            "custom[1].qualification_type_id",
            "'3A' is already custom[0]",
        ),
    ],
)
def test_a_custom_qualification_mturk_would_refuse_is_named(changes, field, problem):
    with pytest.raises(MTurkSettingsError) as caught:
        hit_settings_from_study(study_with(**changes))

    assert str(caught.value).startswith(f"mturk.qualifications.{field}: ")
    assert problem in str(caught.value)


def test_keywords_longer_than_mturk_takes_are_refused_not_cut():
    with pytest.raises(MTurkSettingsError, match=r"^mturk\.keywords: are longer than 1000"):
        hit_settings_from_study(study_with(keywords=["k" * 200] * 6))


def test_a_stored_block_reads_back_to_the_same_settings():
    from mturk.spec import MTurkSpec

    stored = MTurkSpec.model_validate(SEED001_MTURK).model_dump(mode="json")

    assert hit_settings_from_study(study_with(**stored)) == hit_settings_from_study(study_with())
    assert stored["reward"] == "1.50"
    assert stored["qualifications"]["custom"] == []


def test_a_lab_only_study_cannot_be_published():
    with pytest.raises(MTurkSettingsError, match="no mturk settings"):
        hit_settings_from_study(SimpleNamespace(slug="lab", mturk={}))


def test_the_endpoint_state_survives_a_restart(tmp_path):
    from mturk.local import Store

    path = str(tmp_path / "state.sqlite3")
    Store(path).worker_add(worker_id="AW1", country="CA")
    assert Store(path).worker_get("AW1")["country"] == "CA"


def test_blank_qualifications_read_as_the_defaults():
    settings = hit_settings_from_study(study_with(qualifications=None))

    assert settings.locales == []
    assert settings.exclude_participated is True
    assert settings.custom == []
