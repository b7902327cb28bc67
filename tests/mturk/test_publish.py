"""Publishing a study: settings checked before any call, cost and balance before money, HITs
under 10 assignments, and no second HIT however a launch is retried."""

from __future__ import annotations

from decimal import Decimal
from xml.etree import ElementTree

import pytest

from mturk.client import MTurkConfigError, MTurkServiceError, MTurkUnreachable
from mturk.models import Hit, HitType, QualificationType
from mturk.services import (
    MTurkSettingsError,
    PublishNotConfirmed,
    hit_expire,
    hit_extend,
    hit_publish,
)
from tests.mturk.conftest import N_PAIRS, REPETITIONS

NEEDED = N_PAIRS * REPETITIONS  # 24 assignments


def test_publishing_without_confirmation_shows_cost_and_balance_and_creates_nothing(
    study, client, local_mturk
):
    with pytest.raises(PublishNotConfirmed) as caught:
        hit_publish(study=study, client=client, confirm=False)
    plan = caught.value.plan
    assert plan.estimate.assignments == NEEDED
    assert plan.estimate.hits == [8, 8, 8]
    # 24 x 1.50 rewards + 24 x 0.30 fees
    assert plan.estimate.total == Decimal("43.20")
    assert plan.balance == Decimal("10000.00")
    assert "$43.20" in str(caught.value)
    assert not Hit.objects.exists()
    assert local_mturk.calls("CreateHITWithHITType") == 0
    assert local_mturk.calls("CreateHITType") == 0


@pytest.mark.parametrize("reward", ["0.505", "-1", "abc", "0", ""])
def test_an_invalid_reward_is_refused_before_any_call(study, client, local_mturk, reward):
    study.mturk["reward"] = reward
    study.save()
    with pytest.raises(MTurkSettingsError, match=r"mturk\.reward"):
        hit_publish(study=study, client=client, confirm=True)
    assert local_mturk.store.counts()["calls"] == {}
    assert not Hit.objects.exists()


def test_publishing_needs_an_https_base_url_outside_the_local_endpoint(study, settings, aws_env):
    from mturk.services.hits import question_url

    settings.PUBLIC_BASE_URL = "http://studies.example.org"
    with pytest.raises(MTurkConfigError, match="https://"):
        question_url(study=study, environment="sandbox")
    assert question_url(study=study, environment="local").startswith("http://studies")


def test_publishing_creates_hits_under_10_assignments_with_the_studys_filters(
    study, client, local_mturk
):
    result = hit_publish(study=study, client=client, confirm=True)
    assert result.created == 3
    hits = [client.get_hit(HITId=h.hit_id)["HIT"] for h in result.hits]
    assert [h["MaxAssignments"] for h in hits] == [8, 8, 8]
    assert sum(h["MaxAssignments"] for h in hits) == NEEDED
    hit = hits[0]
    assert hit["Reward"] == "1.50"
    assert hit["AssignmentDurationInSeconds"] == 3600
    assert hit["AutoApprovalDelayInSeconds"] == 72 * 3600
    question = ElementTree.fromstring(hit["Question"])
    ns = "{http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd}"
    assert question.find(f"{ns}ExternalURL").text == "http://testserver/hit/mturk-test/"
    assert question.find(f"{ns}FrameHeight").text == "900"
    requirements = {r["QualificationTypeId"]: r for r in hit["QualificationRequirements"]}
    assert requirements["00000000000000000071"]["LocaleValues"] == [
        {"Country": "US"},
        {"Country": "CA"},
    ]
    assert requirements["00000000000000000040"]["IntegerValues"] == [1000]
    assert requirements["000000000000000000L0"]["Comparator"] == "GreaterThan"
    participated = QualificationType.objects.get(study=study).qualification_type_id
    assert requirements[participated]["Comparator"] == "DoesNotExist"


def test_publishing_again_creates_no_second_launch(study, client, local_mturk):
    hit_publish(study=study, client=client, confirm=True)
    again = hit_publish(study=study, client=client, confirm=True)
    assert again.created == 0
    assert local_mturk.store.counts()["hits"] == 3
    assert HitType.objects.count() == 1


def test_a_lost_create_answer_retried_by_botocore_creates_no_second_hit(study, client, local_mturk):
    local_mturk.fault("CreateHITWithHITType", "drop", count=1)
    result = hit_publish(study=study, client=client, confirm=True)
    assert local_mturk.store.counts()["hits"] == 3
    assert sorted(h.hit_id for h in result.hits) == sorted(
        h["HITId"] for h in client.list_hits()["HITs"]
    )


def test_a_launch_interrupted_by_lost_answers_is_finished_by_publishing_again(
    study, client, local_mturk
):
    local_mturk.fault("CreateHITWithHITType", "drop", count=3)  # every attempt of the first HIT
    with pytest.raises(MTurkUnreachable):
        hit_publish(study=study, client=client, confirm=True)
    assert local_mturk.store.counts()["hits"] == 1  # applied, answer lost
    pending = Hit.objects.get(batch=0)
    assert pending.hit_id == ""
    result = hit_publish(study=study, client=client, confirm=True)
    assert local_mturk.store.counts()["hits"] == 3
    assert Hit.objects.exclude(hit_id="").count() == 3
    assert Hit.objects.get(batch=0).unique_request_token == pending.unique_request_token
    assert result.created == 3


def test_a_service_fault_during_publish_leaves_consistent_records(study, client, local_mturk):
    local_mturk.fault("CreateHITWithHITType", "fault", count=1)
    with pytest.raises(MTurkServiceError, match="ServiceFault"):
        hit_publish(study=study, client=client, confirm=True)
    assert local_mturk.store.counts()["hits"] == 0
    assert Hit.objects.exclude(hit_id="").count() == 0
    hit_publish(study=study, client=client, confirm=True)
    assert local_mturk.store.counts()["hits"] == 3


def test_production_is_refused_for_a_study_that_does_not_allow_it(study, monkeypatch, aws_env):
    from mturk.services import study_client

    monkeypatch.setenv("MTURK_ALLOW_PRODUCTION", "1")
    with pytest.raises(MTurkConfigError, match="study does not allow"):
        study_client(study=study, environment="production")


def test_expiring_a_study_closes_every_hit(study, client, local_mturk):
    hit_publish(study=study, client=client, confirm=True)
    assert hit_expire(study=study, client=client) == 3
    statuses = {h["HITStatus"] for h in client.list_hits()["HITs"]}
    assert statuses == {"Reviewable"}
    assert hit_expire(study=study, client=client) == 0


def test_extending_fills_hits_up_to_9_then_opens_new_ones(study, client, local_mturk):
    hit_publish(study=study, client=client, confirm=True)
    result = hit_extend(study=study, client=client, assignments=5)
    assert result == {"assignments_added": 5, "hits_created": 1, "hits_extended": 0}
    sizes = sorted(h["MaxAssignments"] for h in client.list_hits()["HITs"])
    assert sizes == [2, 9, 9, 9]
    assert all(size < 10 for size in sizes)
    assert sorted(Hit.objects.values_list("max_assignments", flat=True)) == sizes


def test_an_extension_whose_answer_was_lost_is_not_applied_twice(study, client, local_mturk):
    hit_publish(study=study, client=client, confirm=True)
    local_mturk.fault("CreateAdditionalAssignmentsForHIT", "drop", count=3)
    with pytest.raises(MTurkUnreachable):
        hit_extend(study=study, client=client, assignments=1)
    hit_extend(study=study, client=client, assignments=1)  # the same request, again
    sizes = sorted(h["MaxAssignments"] for h in client.list_hits()["HITs"])
    assert sizes == [8, 8, 9]


def test_extending_time_moves_every_expiry_forward(study, client, local_mturk):
    hit_publish(study=study, client=client, confirm=True)
    before = {h["HITId"]: h["Expiration"] for h in client.list_hits()["HITs"]}
    assert hit_extend(study=study, client=client, seconds=3600)["hits_extended"] == 3
    after = {h["HITId"]: h["Expiration"] for h in client.list_hits()["HITs"]}
    assert all((after[k] - before[k]).total_seconds() >= 3599 for k in before)
