"""The exact requests our services send, checked by ``botocore.stub.Stubber`` against AWS's
own MTurk model (a wrong name, type or missing field fails the stub)."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from botocore.stub import ANY, Stubber

from mturk.client import SANDBOX_URL
from mturk.models import AssignmentRecord, Hit
from mturk.services import (
    assignment_approve,
    assignment_reject,
    assignments_sync,
    bonus_send,
    hit_expire,
    hit_extend,
    hit_publish,
    participation_grant,
    workers_notify,
)
from tests.mturk.conftest import platform_assignment

HIT_TYPE_ID = "3HITTYPE0000000000000000000000"
QUAL_ID = "3QUAL000000000000000000000000"
HIT_IDS = [
    "3HIT00000000000000000000000001",
    "3HIT00000000000000000000000002",
    "3HIT00000000000000000000000003",
]
ASSIGNMENT_ID = "3ASSIGN000000000000000000000001"
WORKER_ID = "AWORKER1"


@pytest.fixture
def stubbed(aws_env, settings):
    settings.PUBLIC_BASE_URL = "https://studies.example.org"
    client = boto3.client("mturk", region_name="us-east-1", endpoint_url=SANDBOX_URL)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def hit(hit_id: str, max_assignments: int = 8) -> dict:
    return {
        "HITId": hit_id,
        "MaxAssignments": max_assignments,
        "Expiration": dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    }


def test_publish_sends_the_documented_shapes(study, stubbed):
    client, stub = stubbed
    stub.add_response("get_account_balance", {"AvailableBalance": "100.00"}, {})
    stub.add_response(
        "create_qualification_type",
        {"QualificationType": {"QualificationTypeId": QUAL_ID}},
        {
            "Name": "studyplatform participated: mturk-test",
            "Description": ANY,
            "QualificationTypeStatus": "Active",
            "Keywords": "studyplatform",
        },
    )
    stub.add_response(
        "create_hit_type",
        {"HITTypeId": HIT_TYPE_ID},
        {
            "AutoApprovalDelayInSeconds": 259200,
            "AssignmentDurationInSeconds": 3600,
            "Reward": "1.50",
            "Title": "Find images of an object",
            "Keywords": "image, search",
            "Description": "Search an image archive twice, then answer a few questions.",
            "QualificationRequirements": [
                {
                    "QualificationTypeId": "00000000000000000071",
                    "Comparator": "In",
                    "LocaleValues": [{"Country": "US"}, {"Country": "CA"}],
                    "ActionsGuarded": "Accept",
                },
                {
                    "QualificationTypeId": "00000000000000000040",
                    "Comparator": "GreaterThanOrEqualTo",
                    "IntegerValues": [1000],
                    "ActionsGuarded": "Accept",
                },
                {
                    "QualificationTypeId": "000000000000000000L0",
                    "Comparator": "GreaterThan",
                    "IntegerValues": [97],
                    "ActionsGuarded": "Accept",
                },
                {
                    "QualificationTypeId": QUAL_ID,
                    "Comparator": "DoesNotExist",
                    "ActionsGuarded": "DiscoverPreviewAndAccept",
                },
            ],
        },
    )
    question = (
        '<?xml version="1.0" encoding="UTF-8"?><ExternalQuestion xmlns="http://mechanicalturk.'
        'amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd">'
        "<ExternalURL>https://studies.example.org/hit/mturk-test/</ExternalURL>"
        "<FrameHeight>900</FrameHeight></ExternalQuestion>"
    )
    for batch, hit_id in enumerate(HIT_IDS):
        stub.add_response(
            "create_hit_with_hit_type",
            {"HIT": hit(hit_id)},
            {
                "HITTypeId": HIT_TYPE_ID,
                "MaxAssignments": 8,
                "LifetimeInSeconds": 72 * 3600,
                "Question": question,
                "RequesterAnnotation": f"mturk-test batch {batch}",
                "UniqueRequestToken": ANY,
            },
        )
    result = hit_publish(study=study, client=client, confirm=True)
    assert [h.hit_id for h in result.hits] == HIT_IDS
    tokens = {h.unique_request_token for h in result.hits}
    assert len(tokens) == 3
    assert all(1 <= len(t) <= 64 for t in tokens)


@pytest.fixture
def published(study, stubbed):
    from mturk.models import HitType, QualificationType

    hit_type = HitType.objects.create(
        environment="sandbox", study=study, hit_type_id=HIT_TYPE_ID, params_sha256="x", params={}
    )
    QualificationType.objects.create(
        environment="sandbox", study=study, name="q", qualification_type_id=QUAL_ID
    )
    return Hit.objects.create(
        environment="sandbox",
        study=study,
        hit_type=hit_type,
        batch=0,
        max_assignments=8,
        unique_request_token="t0",
        hit_id=HIT_IDS[0],
        lifetime_seconds=3600,
        expires_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )


def test_sync_approve_reject_bonus_send_the_documented_shapes(study, stubbed, published):
    client, stub = stubbed
    assignment = platform_assignment(
        study=study,
        worker_id=WORKER_ID,
        mturk_assignment_id=ASSIGNMENT_ID,
        hit_id=HIT_IDS[0],
        status="submitted",
    )
    submitted = {
        "AssignmentId": ASSIGNMENT_ID,
        "WorkerId": WORKER_ID,
        "HITId": HIT_IDS[0],
        "AssignmentStatus": "Submitted",
    }
    stub.add_response(
        "list_assignments_for_hit",
        {"Assignments": [submitted], "NextToken": "page2", "NumResults": 1},
        {"HITId": HIT_IDS[0], "MaxResults": 100},
    )
    stub.add_response(
        "list_assignments_for_hit",
        {"Assignments": [], "NumResults": 0},
        {"HITId": HIT_IDS[0], "MaxResults": 100, "NextToken": "page2"},
    )
    stub.add_response(  # the worker MTurk listed gets the participated qualification
        "associate_qualification_with_worker",
        {},
        {
            "QualificationTypeId": QUAL_ID,
            "WorkerId": WORKER_ID,
            "IntegerValue": 1,
            "SendNotification": False,
        },
    )
    stub.add_response(
        "approve_assignment", {}, {"AssignmentId": ASSIGNMENT_ID, "RequesterFeedback": "Thanks"}
    )
    stub.add_response(
        "send_bonus",
        {},
        {
            "WorkerId": WORKER_ID,
            "BonusAmount": "0.75",
            "AssignmentId": ASSIGNMENT_ID,
            "Reason": "accuracy",
            "UniqueRequestToken": ANY,
        },
    )
    report = assignments_sync(study=study, client=client)
    assert report.listed == 1
    assignment_approve(mturk_assignment_id=ASSIGNMENT_ID, client=client, feedback="Thanks")
    bonus_send(
        worker_id=WORKER_ID,
        mturk_assignment_id=ASSIGNMENT_ID,
        amount="0.75",
        reason="accuracy",
        client=client,
    )
    assignment.refresh_from_db()
    assert assignment.status == "approved"


def test_reject_sends_the_documented_shape(study, stubbed, published):
    client, stub = stubbed
    AssignmentRecord.objects.create(
        hit=published, assignment_id=ASSIGNMENT_ID, worker_id=WORKER_ID, status="Submitted"
    )
    stub.add_response(
        "reject_assignment", {}, {"AssignmentId": ASSIGNMENT_ID, "RequesterFeedback": "empty"}
    )
    assignment_reject(mturk_assignment_id=ASSIGNMENT_ID, client=client, reason="empty")


def test_expire_extend_notify_grant_send_the_documented_shapes(study, stubbed, published):
    client, stub = stubbed
    stub.add_response(
        "create_additional_assignments_for_hit",
        {},
        {"HITId": HIT_IDS[0], "NumberOfAdditionalAssignments": 1, "UniqueRequestToken": ANY},
    )
    stub.add_response("update_expiration_for_hit", {}, {"HITId": HIT_IDS[0], "ExpireAt": ANY})
    stub.add_response(
        "notify_workers",
        {"NotifyWorkersFailureStatuses": []},
        {"Subject": "Thanks", "MessageText": "All paid.", "WorkerIds": [WORKER_ID]},
    )
    stub.add_response(
        "associate_qualification_with_worker",
        {},
        {
            "QualificationTypeId": QUAL_ID,
            "WorkerId": WORKER_ID,
            "IntegerValue": 1,
            "SendNotification": False,
        },
    )
    hit_extend(study=study, client=client, assignments=1)
    assert Hit.objects.get().max_assignments == 9
    hit_expire(study=study, client=client)
    workers_notify(worker_ids=[WORKER_ID], subject="Thanks", message="All paid.", client=client)
    assert participation_grant(study=study, worker_id=WORKER_ID, client=client) == [QUAL_ID]
