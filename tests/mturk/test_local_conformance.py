"""The local endpoint against botocore's ``mturk`` service model: every operation the model
names is answered, once with a valid request and once with an invalid one, through boto3.

Invalid requests go through a client with ``parameter_validation=False`` (what curl, another
SDK or an older botocore would send), so the endpoint's own checks are what refuse them; the
expected error type is MTurk's: ``ValidationException`` for what the model forbids,
``RequestError`` for MTurk's own rules, ``ParameterValidationError`` for unusable XML.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from types import SimpleNamespace

import boto3
import botocore.exceptions
import pytest
from botocore import UNSIGNED, xform_name
from botocore.config import Config

QUESTION = (
    '<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2006-07-14/ExternalQuestion.xsd"><ExternalURL>https://example.org/task</ExternalURL>'
    "<FrameHeight>600</FrameHeight></ExternalQuestion>"
)
SQS = {
    "Destination": "https://sqs.us-east-1.amazonaws.com/123456789012/hits",
    "Transport": "SQS",
    "Version": "2006-05-05",
    "EventTypes": ["AssignmentSubmitted"],
}
TEST_FORM = (
    '<QuestionForm xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2017-11-06/QuestionForm.xsd"><Question><QuestionIdentifier>q1</QuestionIdentifier>'
    "<QuestionContent><Text>2+2?</Text></QuestionContent><AnswerSpecification>"
    "<FreeTextAnswer/></AnswerSpecification></Question></QuestionForm>"
)


def raw_client(url: str, **config):
    """A plain boto3 client, as a researcher's script builds it, pointed at ``url``."""
    return boto3.client(
        "mturk",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIDRESEARCHER",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}, **config),
    )


@pytest.fixture
def clients(local_mturk):
    return SimpleNamespace(
        ok=raw_client(local_mturk.url),
        loose=raw_client(local_mturk.url, parameter_validation=False),
        unsigned=raw_client(local_mturk.url, signature_version=UNSIGNED),
    )


def hit(c, *, max_assignments=3, **extra) -> str:
    return c.create_hit(
        Title="Find images",
        Description="Search twice.",
        Reward="0.50",
        AssignmentDurationInSeconds=600,
        LifetimeInSeconds=3600,
        MaxAssignments=max_assignments,
        Question=QUESTION,
        **extra,
    )["HIT"]["HITId"]


@pytest.fixture
def world(local_mturk, clients):
    """A qualification type, HITs, two submitted assignments, two pending requests."""
    c = clients.ok
    qual = c.create_qualification_type(
        Name="screened", Description="passed screening", QualificationTypeStatus="Active"
    )["QualificationType"]["QualificationTypeId"]
    main = hit(
        c,
        AssignmentReviewPolicy={
            "PolicyName": "ScoreMyKnownAnswers/2011-09-01",
            "Parameters": [{"Key": "AnswerKey", "MapEntries": [{"Key": "q1", "Values": ["4"]}]}],
        },
    )
    guarded = hit(
        c, QualificationRequirements=[{"QualificationTypeId": qual, "Comparator": "Exists"}]
    )
    empty = hit(c)
    assignments = []
    for worker in ("AW1", "AW2", "AW3", "AW4"):
        local_mturk.worker(worker)
    for worker in ("AW1", "AW2"):
        assignment = local_mturk.accept(worker, main)
        local_mturk.control("submit", {"assignment_id": assignment, "answers": {"done": "1"}})
        assignments.append(assignment)
    for worker in ("AW3", "AW4"):
        local_mturk.control("qualification_request", {"worker_id": worker, "type_id": qual})
    requests = [
        r["QualificationRequestId"]
        for r in c.list_qualification_requests()["QualificationRequests"]
    ]
    hit_type = c.get_hit(HITId=main)["HIT"]["HITTypeId"]
    return SimpleNamespace(
        qual=qual,
        hit=main,
        guarded=guarded,
        empty=empty,
        hit_type=hit_type,
        a1=assignments[0],
        a2=assignments[1],
        requests=requests,
    )


def expired_hit(c) -> str:
    hit_id = hit(c)
    c.update_expiration_for_hit(HITId=hit_id, ExpireAt=dt.datetime(2015, 1, 1))
    return hit_id


# Each valid case calls the operation and returns something the test checks is true.
VALID = {
    "AcceptQualificationRequest": lambda c, w: (
        c.accept_qualification_request(QualificationRequestId=w.requests[0], IntegerValue=80)
        and c.get_qualification_score(QualificationTypeId=w.qual, WorkerId="AW3")["Qualification"][
            "IntegerValue"
        ]
        == 80
    ),
    "ApproveAssignment": lambda c, w: (
        c.approve_assignment(AssignmentId=w.a1, RequesterFeedback="thanks") is not None
        and c.get_assignment(AssignmentId=w.a1)["Assignment"]["AssignmentStatus"] == "Approved"
    ),
    "AssociateQualificationWithWorker": lambda c, w: (
        c.associate_qualification_with_worker(QualificationTypeId=w.qual, WorkerId="AW1")
        and c.get_qualification_score(QualificationTypeId=w.qual, WorkerId="AW1")["Qualification"][
            "Status"
        ]
        == "Granted"
    ),
    "CreateAdditionalAssignmentsForHIT": lambda c, w: (
        c.create_additional_assignments_for_hit(HITId=w.hit, NumberOfAdditionalAssignments=2)
        and c.get_hit(HITId=w.hit)["HIT"]["MaxAssignments"] == 5
    ),
    "CreateHIT": lambda c, w: c.get_hit(HITId=hit(c))["HIT"]["HITStatus"] == "Assignable",
    "CreateHITType": lambda c, w: (
        c.create_hit_type(
            Title="Find images",
            Description="Search twice.",
            Reward="0.50",
            AssignmentDurationInSeconds=600,
        )["HITTypeId"]
        != ""
    ),
    "CreateHITWithHITType": lambda c, w: (
        c.create_hit_with_hit_type(HITTypeId=w.hit_type, LifetimeInSeconds=600, Question=QUESTION)[
            "HIT"
        ]["HITTypeId"]
        == w.hit_type
    ),
    "CreateQualificationType": lambda c, w: (
        c.create_qualification_type(
            Name="tested",
            Description="took the test",
            QualificationTypeStatus="Active",
            Test=TEST_FORM,
            TestDurationInSeconds=600,
            RetryDelayInSeconds=3600,
        )["QualificationType"]["IsRequestable"]
        is True
    ),
    "CreateWorkerBlock": lambda c, w: (
        c.create_worker_block(WorkerId="AW9", Reason="spam") is not None
        and c.list_worker_blocks()["WorkerBlocks"] == [{"WorkerId": "AW9", "Reason": "spam"}]
    ),
    "DeleteHIT": lambda c, w: (
        c.delete_hit(HITId=(gone := expired_hit(c))) is not None
        and c.get_hit(HITId=gone)["HIT"]["HITStatus"] == "Disposed"
        and gone not in [h["HITId"] for h in c.list_hits()["HITs"]]
    ),
    "DeleteQualificationType": lambda c, w: (
        c.delete_qualification_type(QualificationTypeId=w.qual) is not None
        and w.qual
        not in [
            t["QualificationTypeId"]
            for t in c.list_qualification_types(MustBeRequestable=False)["QualificationTypes"]
        ]
    ),
    "DeleteWorkerBlock": lambda c, w: (
        c.create_worker_block(WorkerId="AW9", Reason="spam")
        and c.delete_worker_block(WorkerId="AW9", Reason="sorry") is not None
        and c.list_worker_blocks()["NumResults"] == 0
    ),
    "DisassociateQualificationFromWorker": lambda c, w: (
        c.associate_qualification_with_worker(QualificationTypeId=w.qual, WorkerId="AW1")
        and c.disassociate_qualification_from_worker(
            QualificationTypeId=w.qual, WorkerId="AW1", Reason="retired"
        )
        and c.get_qualification_score(QualificationTypeId=w.qual, WorkerId="AW1")["Qualification"][
            "Status"
        ]
        == "Revoked"
    ),
    "GetAccountBalance": lambda c, w: c.get_account_balance()["AvailableBalance"] == "10000.00",
    "GetAssignment": lambda c, w: c.get_assignment(AssignmentId=w.a1)["HIT"]["HITId"] == w.hit,
    "GetFileUploadURL": lambda c, w: c.get_file_upload_url(
        AssignmentId=w.a1, QuestionIdentifier="done"
    )["FileUploadURL"].endswith(f"/{w.a1}/done"),
    "GetHIT": lambda c, w: c.get_hit(HITId=w.hit)["HIT"]["NumberOfAssignmentsCompleted"] == 2,
    "GetQualificationScore": lambda c, w: (
        c.associate_qualification_with_worker(
            QualificationTypeId=w.qual, WorkerId="AW2", IntegerValue=7
        )
        and c.get_qualification_score(QualificationTypeId=w.qual, WorkerId="AW2")["Qualification"][
            "IntegerValue"
        ]
        == 7
    ),
    "GetQualificationType": lambda c, w: (
        c.get_qualification_type(QualificationTypeId=w.qual)["QualificationType"]["Name"]
        == "screened"
    ),
    "ListAssignmentsForHIT": lambda c, w: (
        c.list_assignments_for_hit(HITId=w.hit)["NumResults"] == 2
    ),
    "ListBonusPayments": lambda c, w: (
        c.send_bonus(WorkerId="AW1", BonusAmount="0.25", AssignmentId=w.a1, Reason="good")
        and c.list_bonus_payments(HITId=w.hit)["BonusPayments"][0]["BonusAmount"] == "0.25"
    ),
    "ListHITs": lambda c, w: c.list_hits()["NumResults"] == 3,
    "ListHITsForQualificationType": lambda c, w: (
        [h["HITId"] for h in c.list_hits_for_qualification_type(QualificationTypeId=w.qual)["HITs"]]
        == [w.guarded]
    ),
    "ListQualificationRequests": lambda c, w: (
        sorted(
            r["WorkerId"]
            for r in c.list_qualification_requests(QualificationTypeId=w.qual)[
                "QualificationRequests"
            ]
        )
        == ["AW3", "AW4"]
    ),
    "ListQualificationTypes": lambda c, w: (
        "screened"
        in [
            t["Name"]
            for t in c.list_qualification_types(MustBeRequestable=True, Query="screen")[
                "QualificationTypes"
            ]
        ]
    ),
    "ListReviewPolicyResultsForHIT": lambda c, w: (
        c.list_review_policy_results_for_hit(HITId=w.hit)["AssignmentReviewPolicy"]["PolicyName"]
        == "ScoreMyKnownAnswers/2011-09-01"
    ),
    "ListReviewableHITs": lambda c, w: (
        (gone := expired_hit(c))
        and [h["HITId"] for h in c.list_reviewable_hits(Status="Reviewable")["HITs"]] == [gone]
    ),
    "ListWorkerBlocks": lambda c, w: c.list_worker_blocks(MaxResults=5)["NumResults"] == 0,
    "ListWorkersWithQualificationType": lambda c, w: (
        c.associate_qualification_with_worker(QualificationTypeId=w.qual, WorkerId="AW1")
        and [
            q["WorkerId"]
            for q in c.list_workers_with_qualification_type(
                QualificationTypeId=w.qual, Status="Granted"
            )["Qualifications"]
        ]
        == ["AW1"]
    ),
    "NotifyWorkers": lambda c, w: (
        c.notify_workers(Subject="Thanks", MessageText="Bonus coming.", WorkerIds=["AW1", "AW5"])[
            "NotifyWorkersFailureStatuses"
        ][0]["WorkerId"]
        == "AW5"
    ),
    "RejectAssignment": lambda c, w: (
        c.reject_assignment(AssignmentId=w.a2, RequesterFeedback="empty answers") is not None
        and c.get_assignment(AssignmentId=w.a2)["Assignment"]["RequesterFeedback"]
        == "empty answers"
    ),
    "RejectQualificationRequest": lambda c, w: (
        c.reject_qualification_request(QualificationRequestId=w.requests[1], Reason="failed")
        is not None
        and len(c.list_qualification_requests()["QualificationRequests"]) == 1
    ),
    "SendBonus": lambda c, w: (
        c.send_bonus(
            WorkerId="AW1",
            BonusAmount="1.00",
            AssignmentId=w.a1,
            Reason="x",
            UniqueRequestToken="b1",
        )
        is not None
        and c.get_account_balance()["AvailableBalance"] == "9998.80"
    ),
    "SendTestEventNotification": lambda c, w: (
        c.send_test_event_notification(
            Notification={**SQS, "EventTypes": ["Ping"]}, TestEventType="Ping"
        )
        is not None
    ),
    "UpdateExpirationForHIT": lambda c, w: (
        c.update_expiration_for_hit(HITId=w.empty, ExpireAt=dt.datetime(2015, 1, 1))
        and c.get_hit(HITId=w.empty)["HIT"]["HITStatus"] == "Reviewable"
    ),
    "UpdateHITReviewStatus": lambda c, w: (
        c.update_hit_review_status(HITId=(gone := expired_hit(c)), Revert=False)
        and c.get_hit(HITId=gone)["HIT"]["HITStatus"] == "Reviewing"
    ),
    "UpdateHITTypeOfHIT": lambda c, w: (
        c.update_hit_type_of_hit(
            HITId=w.empty,
            HITTypeId=(
                new := c.create_hit_type(
                    Title="Other", Description="d", Reward="0.10", AssignmentDurationInSeconds=60
                )["HITTypeId"]
            ),
        )
        and c.get_hit(HITId=w.empty)["HIT"]["Title"] == "Other"
        and new
    ),
    "UpdateNotificationSettings": lambda c, w: (
        c.update_notification_settings(HITTypeId=w.hit_type, Notification=SQS, Active=True)
        is not None
    ),
    "UpdateQualificationType": lambda c, w: (
        c.update_qualification_type(
            QualificationTypeId=w.qual, Description="new text", AutoGranted=True, AutoGrantedValue=5
        )["QualificationType"]["AutoGrantedValue"]
        == 5
    ),
}

# Each invalid case: the call, and the error type MTurk answers it with.
INVALID = {
    "AcceptQualificationRequest": (
        lambda c, w: c.accept_qualification_request(QualificationRequestId="999999"),
        "RequestError",
    ),
    "ApproveAssignment": (
        lambda c, w: c.approve_assignment(AssignmentId="lower-case"),
        "ValidationException",
    ),
    "AssociateQualificationWithWorker": (
        lambda c, w: c.associate_qualification_with_worker(
            QualificationTypeId=w.qual, WorkerId="BNOTAWORKER"
        ),
        "ValidationException",
    ),
    "CreateAdditionalAssignmentsForHIT": (
        lambda c, w: c.create_additional_assignments_for_hit(
            HITId=w.hit, NumberOfAdditionalAssignments=0
        ),
        "RequestError",
    ),
    "CreateHIT": (lambda c, w: hit(c, max_assignments=0), "RequestError"),
    "CreateHITType": (
        lambda c, w: c.create_hit_type(
            Title="t", Description="d", Reward="abc", AssignmentDurationInSeconds=60
        ),
        "ValidationException",
    ),
    "CreateHITWithHITType": (
        lambda c, w: c.create_hit_with_hit_type(
            HITTypeId=w.hit_type, LifetimeInSeconds=600, Question="<ExternalQuestion><oops>"
        ),
        "ParameterValidationError",
    ),
    "CreateQualificationType": (
        lambda c, w: c.create_qualification_type(
            Name="n", Description="d", QualificationTypeStatus="Disposed"
        ),
        "ValidationException",
    ),
    "CreateWorkerBlock": (
        lambda c, w: c.create_worker_block(WorkerId="AW1"),
        "ValidationException",
    ),
    "DeleteHIT": (lambda c, w: c.delete_hit(HITId=w.empty), "RequestError"),
    "DeleteQualificationType": (
        lambda c, w: c.delete_qualification_type(QualificationTypeId="00000000000000000071"),
        "RequestError",
    ),
    "DeleteWorkerBlock": (lambda c, w: c.delete_worker_block(WorkerId=""), "ValidationException"),
    "DisassociateQualificationFromWorker": (
        lambda c, w: c.disassociate_qualification_from_worker(
            QualificationTypeId=w.qual, WorkerId="AW1"
        ),
        "RequestError",
    ),
    "GetAssignment": (lambda c, w: c.get_assignment(AssignmentId="NOSUCH"), "RequestError"),
    "GetFileUploadURL": (
        lambda c, w: c.get_file_upload_url(AssignmentId=w.a1, QuestionIdentifier="photo"),
        "RequestError",
    ),
    "GetHIT": (lambda c, w: c.get_hit(HITId="A" * 65), "ValidationException"),
    "GetQualificationScore": (
        lambda c, w: c.get_qualification_score(QualificationTypeId=w.qual, WorkerId="AW1"),
        "RequestError",
    ),
    "GetQualificationType": (
        lambda c, w: c.get_qualification_type(QualificationTypeId="NOSUCH"),
        "RequestError",
    ),
    "ListAssignmentsForHIT": (
        lambda c, w: c.list_assignments_for_hit(HITId=w.hit, MaxResults=101),
        "ValidationException",
    ),
    "ListBonusPayments": (lambda c, w: c.list_bonus_payments(), "RequestError"),
    "ListHITs": (lambda c, w: c.list_hits(NextToken="made-up"), "RequestError"),
    "ListHITsForQualificationType": (
        lambda c, w: c.list_hits_for_qualification_type(QualificationTypeId=w.qual, MaxResults=0),
        "ValidationException",
    ),
    "ListQualificationRequests": (
        # a token from another operation is refused
        lambda c, w: c.list_qualification_requests(
            NextToken=c.list_hits(MaxResults=1)["NextToken"]
        ),
        "RequestError",
    ),
    "ListQualificationTypes": (lambda c, w: c.list_qualification_types(), "ValidationException"),
    "ListReviewPolicyResultsForHIT": (
        lambda c, w: c.list_review_policy_results_for_hit(HITId=w.hit, PolicyLevels=["Worker"]),
        "ValidationException",
    ),
    "ListReviewableHITs": (
        lambda c, w: c.list_reviewable_hits(Status="Assignable"),
        "ValidationException",
    ),
    "ListWorkerBlocks": (lambda c, w: c.list_worker_blocks(MaxResults=1000), "ValidationException"),
    "ListWorkersWithQualificationType": (
        lambda c, w: c.list_workers_with_qualification_type(
            QualificationTypeId=w.qual, Status="Pending"
        ),
        "ValidationException",
    ),
    "NotifyWorkers": (
        lambda c, w: c.notify_workers(
            Subject="s", MessageText="m", WorkerIds=[f"AW{i}" for i in range(101)]
        ),
        "RequestError",
    ),
    "RejectAssignment": (
        lambda c, w: c.reject_assignment(AssignmentId=w.a2, RequesterFeedback="x" * 1025),
        "RequestError",
    ),
    "RejectQualificationRequest": (
        lambda c, w: (
            c.accept_qualification_request(QualificationRequestId=w.requests[1])
            and c.reject_qualification_request(QualificationRequestId=w.requests[1])
        ),
        "RequestError",
    ),
    "SendBonus": (
        lambda c, w: c.send_bonus(
            WorkerId="AW1", BonusAmount="0.00", AssignmentId=w.a1, Reason="x"
        ),
        "RequestError",
    ),
    "SendTestEventNotification": (
        lambda c, w: c.send_test_event_notification(
            Notification={**SQS, "Transport": "FTP"}, TestEventType="Ping"
        ),
        "ValidationException",
    ),
    "UpdateExpirationForHIT": (
        lambda c, w: c.update_expiration_for_hit(HITId=w.hit),
        "ValidationException",
    ),
    "UpdateHITReviewStatus": (
        lambda c, w: c.update_hit_review_status(HITId=w.empty),
        "RequestError",
    ),
    "UpdateHITTypeOfHIT": (
        lambda c, w: c.update_hit_type_of_hit(HITId=w.hit, HITTypeId="NOSUCHTYPE"),
        "RequestError",
    ),
    "UpdateNotificationSettings": (
        lambda c, w: c.update_notification_settings(
            HITTypeId=w.hit_type, Notification={**SQS, "Destination": "not-a-queue"}
        ),
        "RequestError",
    ),
    "UpdateQualificationType": (
        lambda c, w: c.update_qualification_type(
            QualificationTypeId=w.qual, Test=TEST_FORM, TestDurationInSeconds=60, AutoGranted=True
        ),
        "RequestError",
    ),
}
OPERATIONS = (
    boto3.session.Session(region_name="us-east-1")
    .client("mturk", aws_access_key_id="x", aws_secret_access_key="x")
    .meta.service_model.operation_names
)


def test_every_operation_of_the_service_model_is_known_to_the_endpoint(clients):
    unknown = []
    for operation in OPERATIONS:
        try:
            getattr(clients.loose, xform_name(operation))()
        except botocore.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] == "UnknownOperationException":
                unknown.append(operation)
    assert unknown == []
    assert len(OPERATIONS) >= 39


def test_an_operation_outside_the_model_is_unknown(local_mturk):
    # botocore cannot even send it; a hand-made JSON 1.1 request can.
    request = urllib.request.Request(
        local_mturk.url + "/",
        data=b"{}",
        method="POST",
        headers={
            "X-Amz-Target": "MTurkRequesterServiceV20170117.CreateHITLayout",
            "Authorization": "AWS4-HMAC-SHA256 Credential=x",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert json.loads(caught.value.read())["__type"] == "UnknownOperationException"


def test_a_body_that_is_not_json_is_a_serialization_error(local_mturk):
    request = urllib.request.Request(
        local_mturk.url + "/",
        data=b"{not json",
        method="POST",
        headers={
            "X-Amz-Target": "MTurkRequesterServiceV20170117.ListHITs",
            "Authorization": "AWS4-HMAC-SHA256 Credential=x",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert json.loads(caught.value.read())["__type"] == "SerializationException"


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_valid_request_is_answered(operation, clients, world):
    assert operation in VALID, f"no valid request written for {operation}"
    assert VALID[operation](clients.ok, world)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_an_invalid_request_gets_mturks_error_type(operation, clients, world, local_mturk):
    if operation == "GetAccountBalance":  # no input member can be wrong: leave the signature off
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            clients.unsigned.get_account_balance()
        assert caught.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"
        return
    assert operation in INVALID, f"no invalid request written for {operation}"
    call, expected = INVALID[operation]
    before = local_mturk.store.counts()
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(clients.loose, world)
    assert caught.value.response["Error"]["Code"] == expected, caught.value
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    after = local_mturk.store.counts()
    for table in ("hit_types", "hits", "assignments", "bonuses", "notifications", "balance"):
        assert after[table] == before[table], f"{table} changed by a refused {operation}"
