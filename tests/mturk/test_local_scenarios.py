"""Whole requester workflows on the local endpoint through a plain boto3 client, with the
simulated workers acting through the worker pages (HTTP), as a researcher rehearses a launch."""

from __future__ import annotations

import re
from decimal import Decimal

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

EXTERNAL = (
    '<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2006-07-14/ExternalQuestion.xsd"><ExternalURL>https://example.org/exp?mode=live</ExternalURL>'
    "<FrameHeight>0</FrameHeight></ExternalQuestion>"
)
HTML = (
    '<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2011-11-11/HTMLQuestion.xsd"><HTMLContent><![CDATA[<!DOCTYPE html><html><body>'
    "<form name='mturk_form' method='post' id='mturk_form' action='/mturk/externalSubmit'>"
    "<p id='ask'>Is this a cat?</p><input type='hidden' name='assignmentId' id='assignmentId'>"
    "<input name='cat'></form></body></html>]]></HTMLContent><FrameHeight>450</FrameHeight>"
    "</HTMLQuestion>"
)
FORM = (
    '<QuestionForm xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2017-11-06/QuestionForm.xsd"><Overview><Text>Two short questions.</Text></Overview>'
    "<Question><QuestionIdentifier>colour</QuestionIdentifier><QuestionContent><Text>Sky colour?"
    "</Text></QuestionContent><AnswerSpecification><SelectionAnswer><Selections>"
    "<Selection><SelectionIdentifier>blue</SelectionIdentifier><Text>Blue</Text></Selection>"
    "<Selection><SelectionIdentifier>green</SelectionIdentifier><Text>Green &amp; &lt;b&gt;</Text>"
    "</Selection></Selections></SelectionAnswer></AnswerSpecification></Question>"
    "<Question><QuestionIdentifier>why</QuestionIdentifier><QuestionContent><Text>Why?</Text>"
    "</QuestionContent><AnswerSpecification><FreeTextAnswer/></AnswerSpecification></Question>"
    "</QuestionForm>"
)
ANSWER_KEY = (
    '<AnswerKey xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2005-10-01/AnswerKey.xsd"><Question><QuestionIdentifier>colour</QuestionIdentifier>'
    "<AnswerOption><SelectionIdentifier>blue</SelectionIdentifier><AnswerScore>90</AnswerScore>"
    "</AnswerOption></Question></AnswerKey>"
)


@pytest.fixture
def mturk(local_mturk):
    """A researcher's own boto3 client: only ``endpoint_url`` differs from the sandbox."""
    return boto3.client(
        "mturk",
        endpoint_url=local_mturk.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDRESEARCHER",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )


def create_hit(mturk, question=EXTERNAL, **extra):
    params = {
        "Title": "Perception experiment",
        "Description": "A 10 minute experiment.",
        "Keywords": "psychology, experiment",
        "Reward": "1.00",
        "MaxAssignments": 3,
        "LifetimeInSeconds": 24 * 3600,
        "AssignmentDurationInSeconds": 3600,
        "AutoApprovalDelayInSeconds": 3 * 24 * 3600,
        "Question": question,
    }
    params.update(extra)
    return mturk.create_hit(**params)["HIT"]


def accept_by_page(local_mturk, worker: str, hit_id: str) -> tuple[str, str]:
    """The worker presses Accept on the preview; returns (assignment id, work page)."""
    status, page = local_mturk.post_form(f"/worker/{worker}/hits/{hit_id}/accept", {})
    assert status == 200, page
    return re.search(r"assignmentId=([A-Z0-9]+)", page).group(1), page


def test_a_psiturk_style_launch_runs_from_create_hit_to_bonus(local_mturk, mturk):
    hit = create_hit(mturk)
    assert hit["HITStatus"] == "Assignable"
    assert hit["NumberOfAssignmentsAvailable"] == 3
    workers = ["APSI1", "APSI2", "APSI3"]
    assignments = {}
    for worker in workers:
        local_mturk.worker(worker)
        status, listing = local_mturk.get(f"/worker/{worker}/")
        assert hit["HITId"] in listing
        assignment_id, page = accept_by_page(local_mturk, worker, hit["HITId"])
        # the experiment sees MTurk's parameters in its frame URL
        assert "https://example.org/exp?mode=live&amp;hitId=" in page
        assert "assignmentId=" in page
        assert f"workerId={worker}" in page
        status, done = local_mturk.post_form(
            "/mturk/externalSubmit", {"assignmentId": assignment_id, "bonus": "0.30"}
        )
        assert status == 200
        assert "submitted" in done
        assignments[worker] = assignment_id
    reviewable = mturk.list_reviewable_hits()["HITs"]
    assert [h["HITId"] for h in reviewable] == [hit["HITId"]]
    listed = mturk.list_assignments_for_hit(HITId=hit["HITId"], AssignmentStatuses=["Submitted"])
    assert sorted(a["WorkerId"] for a in listed["Assignments"]) == workers
    for assignment in listed["Assignments"]:
        mturk.approve_assignment(AssignmentId=assignment["AssignmentId"])
        mturk.send_bonus(
            WorkerId=assignment["WorkerId"],
            AssignmentId=assignment["AssignmentId"],
            BonusAmount="0.30",
            Reason="Performance bonus",
            UniqueRequestToken=f"bonus-{assignment['AssignmentId']}",
        )
    bonuses = mturk.list_bonus_payments(HITId=hit["HITId"])["BonusPayments"]
    assert sorted(b["WorkerId"] for b in bonuses) == workers
    # 3 x (1.00 + 20% fee) + 3 x (0.30 + 20% fee) = 3.60 + 1.08
    balance = Decimal(mturk.get_account_balance()["AvailableBalance"])
    assert balance == Decimal("10000.00") - Decimal("4.68")
    assert mturk.get_hit(HITId=hit["HITId"])["HIT"]["NumberOfAssignmentsCompleted"] == 3
    mturk.delete_hit(HITId=hit["HITId"])
    assert mturk.list_hits()["NumResults"] == 0


def test_a_hit_with_unreviewed_work_cannot_be_deleted_and_auto_approval_pays(local_mturk, mturk):
    hit = create_hit(mturk, MaxAssignments=1, AutoApprovalDelayInSeconds=60)
    local_mturk.worker("AW1")
    assignment_id, _ = accept_by_page(local_mturk, "AW1", hit["HITId"])
    with pytest.raises(mturk.exceptions.RequestError, match="Unassignable"):
        mturk.delete_hit(HITId=hit["HITId"])
    local_mturk.post_form("/mturk/externalSubmit", {"assignmentId": assignment_id})
    with pytest.raises(mturk.exceptions.RequestError, match="not yet approved or rejected"):
        mturk.delete_hit(HITId=hit["HITId"])
    local_mturk.control("clock", {"seconds": 61})
    assignment = mturk.get_assignment(AssignmentId=assignment_id)["Assignment"]
    assert assignment["AssignmentStatus"] == "Approved"
    assert mturk.get_account_balance()["AvailableBalance"] == "9998.80"
    mturk.delete_hit(HITId=hit["HITId"])


def test_a_rejection_can_be_overridden_once(local_mturk, mturk):
    hit = create_hit(mturk)
    local_mturk.worker("AW1")
    assignment_id, _ = accept_by_page(local_mturk, "AW1", hit["HITId"])
    local_mturk.post_form("/mturk/externalSubmit", {"assignmentId": assignment_id})
    mturk.reject_assignment(AssignmentId=assignment_id, RequesterFeedback="No answers.")
    with pytest.raises(mturk.exceptions.RequestError):
        mturk.approve_assignment(AssignmentId=assignment_id)
    mturk.approve_assignment(AssignmentId=assignment_id, OverrideRejection=True)
    assert (
        mturk.get_assignment(AssignmentId=assignment_id)["Assignment"]["AssignmentStatus"]
        == "Approved"
    )
    with pytest.raises(mturk.exceptions.RequestError):
        mturk.approve_assignment(AssignmentId=assignment_id, OverrideRejection=True)


def test_a_qualification_test_is_requested_granted_and_rejected(local_mturk, mturk):
    qual = mturk.create_qualification_type(
        Name="Colour test",
        Description="Answer two questions about colours.",
        QualificationTypeStatus="Active",
        Test=FORM,
        TestDurationInSeconds=600,
    )["QualificationType"]
    type_id = qual["QualificationTypeId"]
    hit = create_hit(
        mturk,
        QualificationRequirements=[
            {
                "QualificationTypeId": type_id,
                "Comparator": "GreaterThanOrEqualTo",
                "IntegerValues": [50],
                "ActionsGuarded": "Accept",
            }
        ],
    )
    for worker in ("AGOOD", "APOOR"):
        local_mturk.worker(worker)
        status, page = local_mturk.get(f"/worker/{worker}/qualifications/{type_id}/")
        assert status == 200
        assert "Sky colour?" in page
        assert "Green &amp; &lt;b&gt;" in page
        status, page = local_mturk.post_form(
            f"/worker/{worker}/qualifications/{type_id}/request",
            {"colour": "blue" if worker == "AGOOD" else "green", "why": "looked"},
        )
        assert "pending" in page
    requests = mturk.list_qualification_requests(QualificationTypeId=type_id)
    by_worker = {r["WorkerId"]: r for r in requests["QualificationRequests"]}
    assert set(by_worker) == {"AGOOD", "APOOR"}
    assert "<FreeText>blue</FreeText>" in by_worker["AGOOD"]["Answer"]
    assert by_worker["AGOOD"]["Test"] == FORM
    mturk.accept_qualification_request(
        QualificationRequestId=by_worker["AGOOD"]["QualificationRequestId"], IntegerValue=90
    )
    mturk.reject_qualification_request(
        QualificationRequestId=by_worker["APOOR"]["QualificationRequestId"],
        Reason="The sky is blue.",
    )
    assert mturk.list_qualification_requests()["NumResults"] == 0
    score = mturk.get_qualification_score(QualificationTypeId=type_id, WorkerId="AGOOD")
    assert score["Qualification"]["IntegerValue"] == 90
    with pytest.raises(mturk.exceptions.RequestError):
        mturk.get_qualification_score(QualificationTypeId=type_id, WorkerId="APOOR")
    _, page = local_mturk.get("/worker/APOOR/qualifications/")
    assert "rejected: The sky is blue." in page
    # no retry delay was set: one request only
    assert "already requested" in local_mturk.refused(
        "qualification_request", {"worker_id": "APOOR", "type_id": type_id, "answers": {}}
    )
    assert accept_by_page(local_mturk, "AGOOD", hit["HITId"])[0]
    assert "you do not qualify" in local_mturk.refused(
        "accept", {"worker_id": "APOOR", "hit_id": hit["HITId"]}
    )
    workers = mturk.list_workers_with_qualification_type(QualificationTypeId=type_id)
    assert [q["WorkerId"] for q in workers["Qualifications"]] == ["AGOOD"]


def test_answer_keys_score_and_auto_granted_types_grant_at_once(local_mturk, mturk):
    keyed = mturk.create_qualification_type(
        Name="keyed",
        Description="scored",
        QualificationTypeStatus="Active",
        Test=FORM,
        AnswerKey=ANSWER_KEY,
        TestDurationInSeconds=600,
        RetryDelayInSeconds=3600,
    )["QualificationType"]["QualificationTypeId"]
    auto = mturk.create_qualification_type(
        Name="auto",
        Description="granted on request",
        QualificationTypeStatus="Active",
        AutoGranted=True,
        AutoGrantedValue=3,
    )["QualificationType"]["QualificationTypeId"]
    local_mturk.worker("AW1")
    local_mturk.post_form(f"/worker/AW1/qualifications/{keyed}/request", {"colour": "green"})
    local_mturk.post_form(f"/worker/AW1/qualifications/{auto}/request", {})
    assert mturk.list_qualification_requests()["NumResults"] == 0
    assert (
        mturk.get_qualification_score(QualificationTypeId=keyed, WorkerId="AW1")["Qualification"][
            "IntegerValue"
        ]
        == 0
    )
    assert (
        mturk.get_qualification_score(QualificationTypeId=auto, WorkerId="AW1")["Qualification"][
            "IntegerValue"
        ]
        == 3
    )
    assert "allows a retry 3600 s" in local_mturk.refused(
        "qualification_request", {"worker_id": "AW1", "type_id": keyed, "answers": {}}
    )
    local_mturk.control("clock", {"seconds": 3601})
    local_mturk.control(
        "qualification_request",
        {"worker_id": "AW1", "type_id": keyed, "answers": {"colour": "blue"}},
    )
    assert (
        mturk.get_qualification_score(QualificationTypeId=keyed, WorkerId="AW1")["Qualification"][
            "IntegerValue"
        ]
        == 90
    )


def test_a_blocked_worker_sees_why_and_cannot_accept_until_unblocked(local_mturk, mturk):
    hit = create_hit(mturk)
    local_mturk.worker("ASPAM")
    mturk.create_worker_block(WorkerId="ASPAM", Reason="Copied answers between HITs.")
    _, page = local_mturk.get("/worker/ASPAM/")
    assert "id='blocked'" in page
    assert "Copied answers between HITs." in page
    status, refused = local_mturk.post_form(f"/worker/ASPAM/hits/{hit['HITId']}/accept", {})
    assert status == 400
    assert "blocked" in refused
    assert mturk.get_hit(HITId=hit["HITId"])["HIT"]["NumberOfAssignmentsPending"] == 0
    assert mturk.list_worker_blocks()["WorkerBlocks"] == [
        {"WorkerId": "ASPAM", "Reason": "Copied answers between HITs."}
    ]
    mturk.delete_worker_block(WorkerId="ASPAM", Reason="Appeal accepted.")
    assert accept_by_page(local_mturk, "ASPAM", hit["HITId"])[0]


def test_html_question_is_framed_and_submits_through_external_submit(local_mturk, mturk):
    hit = create_hit(mturk, question=HTML)
    local_mturk.worker("AW1")
    _, preview = local_mturk.get(f"/worker/AW1/hits/{hit['HITId']}/")
    assert f"/worker/content/{hit['HITId']}/?hitId=" in preview
    assert "height='450' sandbox='allow-forms allow-scripts'" in preview
    status, content = local_mturk.get(f"/worker/content/{hit['HITId']}/")
    assert status == 200
    assert "<p id='ask'>Is this a cat?</p>" in content
    assignment_id, page = accept_by_page(local_mturk, "AW1", hit["HITId"])
    assert "turkSubmitTo=" in page
    local_mturk.post_form("/mturk/externalSubmit", {"assignmentId": assignment_id, "cat": "yes"})
    [listed] = mturk.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]
    assert (
        "<QuestionIdentifier>cat</QuestionIdentifier><FreeText>yes</FreeText>" in listed["Answer"]
    )


def test_question_form_is_rendered_as_a_form_that_cannot_submit_in_preview(local_mturk, mturk):
    hit = create_hit(mturk, question=FORM)
    status, preview = local_mturk.get(f"/worker/content/{hit['HITId']}/")
    assert status == 200
    assert "<button disabled id='submit'>" in preview
    assert "type='radio' name='colour' value='blue'" in preview
    assert "Green &amp; &lt;b&gt;" in preview
    assert "<b>" not in preview.split("<body>", 1)[1]
    local_mturk.worker("AW1")
    assignment_id, _ = accept_by_page(local_mturk, "AW1", hit["HITId"])
    _, form = local_mturk.get(
        f"/worker/content/{hit['HITId']}/?assignmentId={assignment_id}&turkSubmitTo={local_mturk.url}"
    )
    assert f"value='{assignment_id}'" in form
    assert f"action='{local_mturk.url}/mturk/externalSubmit'" in form
    local_mturk.post_form(
        "/mturk/externalSubmit",
        {"assignmentId": assignment_id, "colour": "blue", "why": "Rayleigh"},
    )
    [listed] = mturk.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]
    assert "<FreeText>Rayleigh</FreeText>" in listed["Answer"]


def test_notified_workers_read_the_message_on_their_page(local_mturk, mturk):
    hit = create_hit(mturk)
    local_mturk.worker("AW1")
    local_mturk.worker("AW2")
    accept_by_page(local_mturk, "AW1", hit["HITId"])
    answer = mturk.notify_workers(
        Subject="Follow-up <study>", MessageText="Part 2 opens Monday.", WorkerIds=["AW1", "AW2"]
    )
    assert [f["WorkerId"] for f in answer["NotifyWorkersFailureStatuses"]] == ["AW2"]
    _, page = local_mturk.get("/worker/AW1/")
    assert "Follow-up &lt;study&gt;" in page
    assert "Part 2 opens Monday." in page
    _, other = local_mturk.get("/worker/AW2/")
    assert "Part 2 opens Monday." not in other


def test_notification_settings_record_the_events_mturk_would_send(local_mturk, mturk):
    hit = create_hit(mturk)
    spec = {
        "Destination": "arn:aws:sns:us-east-1:123456789012:study-events",
        "Transport": "SNS",
        "Version": "2006-05-05",
        "EventTypes": ["AssignmentAccepted", "AssignmentSubmitted"],
    }
    mturk.update_notification_settings(HITTypeId=hit["HITTypeId"], Notification=spec, Active=True)
    local_mturk.worker("AW1")
    assignment_id, _ = accept_by_page(local_mturk, "AW1", hit["HITId"])
    mturk.update_notification_settings(HITTypeId=hit["HITTypeId"], Active=False)
    local_mturk.post_form("/mturk/externalSubmit", {"assignmentId": assignment_id})
    outbox = local_mturk.store.outbox()
    assert [(o["kind"], o["payload"]["Events"][0]["EventType"]) for o in outbox] == [
        ("SNS", "AssignmentAccepted")
    ]
    assert outbox[0]["payload"]["Events"][0]["AssignmentId"] == assignment_id
    with pytest.raises(botocore.exceptions.ClientError, match="Ping"):
        mturk.update_notification_settings(
            HITTypeId=hit["HITTypeId"], Notification={**spec, "EventTypes": ["Ping"]}
        )


def test_test_events_and_upload_urls_are_recorded_not_sent(local_mturk, mturk):
    mturk.send_test_event_notification(
        Notification={
            "Destination": "researcher@example.org",
            "Transport": "Email",
            "Version": "2006-05-05",
            "EventTypes": ["Ping"],
        },
        TestEventType="Ping",
    )
    hit = create_hit(mturk, question=HTML)
    local_mturk.worker("AW1")
    assignment_id, _ = accept_by_page(local_mturk, "AW1", hit["HITId"])
    local_mturk.post_form("/mturk/externalSubmit", {"assignmentId": assignment_id, "cat": "x"})
    url = mturk.get_file_upload_url(AssignmentId=assignment_id, QuestionIdentifier="cat")
    assert url["FileUploadURL"].startswith("https://uploads.local-mturk.invalid/")
    outbox = local_mturk.store.outbox()
    assert [(o["kind"], o["destination"]) for o in outbox] == [
        ("Email", "researcher@example.org"),
        ("S3", url["FileUploadURL"]),
    ]
    assert outbox[0]["payload"]["Events"][0]["EventType"] == "Ping"


def test_lists_page_through_every_item_with_their_own_tokens(local_mturk, mturk):
    made = [create_hit(mturk, RequesterAnnotation=f"batch {i}")["HITId"] for i in range(5)]
    seen, token, pages = [], None, 0
    while True:
        page = mturk.list_hits(MaxResults=2, **({"NextToken": token} if token else {}))
        seen += [h["HITId"] for h in page["HITs"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert (seen, pages) == (made, 3)
    first = mturk.list_hits(MaxResults=2)["NextToken"]
    with pytest.raises(mturk.exceptions.RequestError, match="not a token this call returned"):
        mturk.list_reviewable_hits(NextToken=first)
    system = mturk.list_qualification_types(MustBeRequestable=False, Query="locale")
    assert [t["QualificationTypeId"] for t in system["QualificationTypes"]] == [
        "00000000000000000071"
    ]
    assert mturk.list_qualification_types(MustBeRequestable=True, Query="locale")["NumResults"] == 0


def test_a_worker_refused_for_a_qualification_is_pointed_to_it_and_told_of_a_grant(
    local_mturk, mturk
):
    type_id = mturk.create_qualification_type(
        Name="Returning participant",
        Description="Took part in wave 1.",
        QualificationTypeStatus="Active",
    )["QualificationType"]["QualificationTypeId"]
    create_hit(
        mturk, QualificationRequirements=[{"QualificationTypeId": type_id, "Comparator": "Exists"}]
    )
    local_mturk.worker("AW1")
    _, page = local_mturk.get("/worker/AW1/")
    assert "href='/worker/AW1/qualifications/'>request qualifications</a>" in page
    mturk.associate_qualification_with_worker(
        QualificationTypeId=type_id, WorkerId="AW1", IntegerValue=1, SendNotification=True
    )
    _, page = local_mturk.get("/worker/AW1/")
    assert "request qualifications</a>" not in page
    assert "Qualification granted: Returning participant" in page
