"""The local MTurk endpoint, driven through the real boto3 client and its worker pages."""

from __future__ import annotations

import datetime as dt
import threading
import urllib.error
import urllib.request

import botocore.exceptions
import pytest

QUESTION = (
    '<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2006-07-14/ExternalQuestion.xsd"><ExternalURL>http://127.0.0.1:9/hit/demo/</ExternalURL>'
    "<FrameHeight>700</FrameHeight></ExternalQuestion>"
)
LOCALE_US_CA = {
    "QualificationTypeId": "00000000000000000071",
    "Comparator": "In",
    "LocaleValues": [{"Country": "US"}, {"Country": "CA"}],
}


def make_hit(client, *, max_assignments=3, requirements=(), title="Find images", token=None):
    hit_type = client.create_hit_type(
        Title=title,
        Description="Search twice.",
        Reward="0.50",
        AssignmentDurationInSeconds=600,
        QualificationRequirements=list(requirements),
    )["HITTypeId"]
    params = {"UniqueRequestToken": token} if token else {}
    return client.create_hit_with_hit_type(
        HITTypeId=hit_type,
        MaxAssignments=max_assignments,
        LifetimeInSeconds=3600,
        Question=QUESTION,
        **params,
    )["HIT"]["HITId"]


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return exc.response.get("TurkErrorCode", "")


def test_an_unsigned_request_is_refused(local_mturk):
    request = urllib.request.Request(
        local_mturk.url + "/",
        data=b"{}",
        method="POST",
        headers={"X-Amz-Target": "MTurkRequesterServiceV20170117.GetAccountBalance"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 403


def test_a_hit_takes_distinct_workers_up_to_max_assignments(local_mturk, client):
    hit_id = make_hit(client, max_assignments=2)
    for worker in ("AW1", "AW2", "AW3"):
        local_mturk.worker(worker)
    local_mturk.accept("AW1", hit_id)
    assert "already worked on this HIT" in local_mturk.refused(
        "accept", {"worker_id": "AW1", "hit_id": hit_id}
    )
    local_mturk.accept("AW2", hit_id)
    assert "no assignments are left" in local_mturk.refused(
        "accept", {"worker_id": "AW3", "hit_id": hit_id}
    )


def test_a_returned_assignment_frees_its_place(local_mturk, client):
    hit_id = make_hit(client, max_assignments=1)
    local_mturk.worker("AW1")
    local_mturk.worker("AW2")
    first = local_mturk.accept("AW1", hit_id)
    local_mturk.control("return", {"assignment_id": first})
    assert local_mturk.accept("AW2", hit_id)


def test_concurrent_accepts_never_exceed_max_assignments(local_mturk, client):
    hit_id = make_hit(client, max_assignments=3)
    workers = [f"AW{i}" for i in range(10)]
    for worker in workers:
        local_mturk.worker(worker)
    accepted, refused = [], []

    def accept(worker):
        try:
            accepted.append(local_mturk.accept(worker, hit_id))
        except AssertionError:
            refused.append(worker)

    threads = [threading.Thread(target=accept, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(accepted), len(refused)) == (3, 7)
    assert client.get_hit(HITId=hit_id)["HIT"]["NumberOfAssignmentsPending"] == 3


@pytest.mark.parametrize(
    ("worker", "reason"),
    [
        ({"country": "GB"}, "00000000000000000071"),
        ({"approved_count": 999}, "00000000000000000040"),
        ({"approval_rate": 97}, "000000000000000000L0"),
    ],
)
def test_a_worker_failing_seed_001_filters_cannot_accept(local_mturk, client, worker, reason):
    requirements = [
        LOCALE_US_CA,
        {
            "QualificationTypeId": "00000000000000000040",
            "Comparator": "GreaterThanOrEqualTo",
            "IntegerValues": [1000],
        },
        {
            "QualificationTypeId": "000000000000000000L0",
            "Comparator": "GreaterThan",
            "IntegerValues": [97],
        },
    ]
    hit_id = make_hit(client, requirements=requirements)
    local_mturk.worker("AGOOD", country="CA", approved_count=1000, approval_rate=98)
    local_mturk.worker("ABAD", **worker)
    assert local_mturk.accept("AGOOD", hit_id)
    assert reason in local_mturk.refused("accept", {"worker_id": "ABAD", "hit_id": hit_id})


def test_a_granted_qualification_required_as_does_not_exist_blocks_the_worker(local_mturk, client):
    qual = client.create_qualification_type(
        Name="participated", Description="took part", QualificationTypeStatus="Active"
    )["QualificationType"]["QualificationTypeId"]
    hit_id = make_hit(
        client, requirements=[{"QualificationTypeId": qual, "Comparator": "DoesNotExist"}]
    )
    local_mturk.worker("AW1")
    local_mturk.worker("AW2")
    client.associate_qualification_with_worker(QualificationTypeId=qual, WorkerId="AW2")
    assert local_mturk.accept("AW1", hit_id)
    assert "you do not qualify" in local_mturk.refused(
        "accept", {"worker_id": "AW2", "hit_id": hit_id}
    )


def test_a_repeated_hit_token_is_refused_with_the_existing_hit_id(client):
    hit_id = make_hit(client, token="launch-1")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        make_hit(client, token="launch-1")
    assert error_code(caught.value) == "AWS.MechanicalTurk.HitAlreadyExists"
    assert hit_id in caught.value.response["Error"]["Message"]
    assert client.list_hits()["NumResults"] == 1


def test_only_a_submitted_assignment_can_be_approved_and_only_once(local_mturk, client):
    hit_id = make_hit(client)
    local_mturk.worker("AW1")
    assignment = local_mturk.accept("AW1", hit_id)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.approve_assignment(AssignmentId=assignment)
    assert error_code(caught.value) == "AWS.MechanicalTurk.InvalidAssignmentState"
    local_mturk.control("submit", {"assignment_id": assignment})
    client.approve_assignment(AssignmentId=assignment)
    with pytest.raises(botocore.exceptions.ClientError):
        client.approve_assignment(AssignmentId=assignment)
    with pytest.raises(botocore.exceptions.ClientError):
        client.reject_assignment(AssignmentId=assignment, RequesterFeedback="late")
    listed = client.list_assignments_for_hit(HITId=hit_id)["Assignments"]
    assert [a["AssignmentStatus"] for a in listed] == ["Approved"]
    # reward 0.50 + 20% fee 0.10
    assert client.get_account_balance()["AvailableBalance"] == "9999.40"


def test_a_bonus_needs_an_assignment_of_that_worker(local_mturk, client):
    hit_id = make_hit(client)
    local_mturk.worker("AW1")
    local_mturk.worker("AW2")
    assignment = local_mturk.accept("AW1", hit_id)
    local_mturk.control("submit", {"assignment_id": assignment})
    with pytest.raises(botocore.exceptions.ClientError):
        client.send_bonus(WorkerId="AW2", BonusAmount="1.00", AssignmentId=assignment, Reason="x")
    client.send_bonus(WorkerId="AW1", BonusAmount="1.00", AssignmentId=assignment, Reason="x")
    assert len(local_mturk.store.bonuses()) == 1


def test_assignments_are_listed_in_pages(local_mturk, client):
    hit_id = make_hit(client, max_assignments=7)
    for i in range(7):
        local_mturk.worker(f"AW{i}")
        local_mturk.control("submit", {"assignment_id": local_mturk.accept(f"AW{i}", hit_id)})
    seen, token, pages = [], None, 0
    while True:
        extra = {"NextToken": token} if token else {}
        page = client.list_assignments_for_hit(HITId=hit_id, MaxResults=3, **extra)
        seen += [a["WorkerId"] for a in page["Assignments"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            break
    assert pages == 3
    assert sorted(seen) == [f"AW{i}" for i in range(7)]


def test_a_hit_expired_with_a_past_date_takes_no_more_workers(local_mturk, client):
    hit_id = make_hit(client)
    local_mturk.worker("AW1")
    client.update_expiration_for_hit(HITId=hit_id, ExpireAt=dt.datetime(2015, 1, 1))
    assert client.get_hit(HITId=hit_id)["HIT"]["HITStatus"] == "Reviewable"
    assert "expired" in local_mturk.refused("accept", {"worker_id": "AW1", "hit_id": hit_id})


def test_a_hit_under_10_cannot_be_extended_to_10_or_more(client):
    hit_id = make_hit(client, max_assignments=9)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.create_additional_assignments_for_hit(HITId=hit_id, NumberOfAdditionalAssignments=1)
    assert error_code(caught.value) == "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease"
    assert client.get_hit(HITId=hit_id)["HIT"]["MaxAssignments"] == 9


def test_an_accepted_assignment_past_its_deadline_is_abandoned(local_mturk, client):
    hit_id = make_hit(client, max_assignments=1)
    local_mturk.worker("AW1")
    local_mturk.worker("AW2")
    assignment = local_mturk.accept("AW1", hit_id)
    local_mturk.control("clock", {"seconds": 601})
    assert "Abandoned" in local_mturk.refused("submit", {"assignment_id": assignment})
    assert local_mturk.accept("AW2", hit_id)


def test_the_worker_pages_preview_accept_frame_and_submit(local_mturk, client):
    hit_id = make_hit(client, title="Find <b>cats</b> & dogs")
    local_mturk.worker("AW1")
    status, listing = local_mturk.get("/worker/AW1/")
    assert status == 200
    assert "Find &lt;b&gt;cats&lt;/b&gt; &amp; dogs" in listing
    assert "<b>cats</b>" not in listing
    status, preview = local_mturk.get(f"/worker/AW1/hits/{hit_id}/")
    assert "assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE" in preview
    assert "id='accept'" in preview
    status, work = local_mturk.post_form(f"/worker/AW1/hits/{hit_id}/accept", {})
    assert status == 200  # followed the redirect to the work page
    assert client.get_hit(HITId=hit_id)["HIT"]["NumberOfAssignmentsPending"] == 1
    frame = work.split("<iframe id='question' src='", 1)[1].split("'", 1)[0]
    assert f"hitId={hit_id}" in frame
    assert "workerId=AW1" in frame
    assert "turkSubmitTo=http%3A%2F%2F127.0.0.1" in frame
    assignment_id = frame.split("assignmentId=", 1)[1].split("&", 1)[0]
    status, page = local_mturk.post_form(
        "/mturk/externalSubmit", {"assignmentId": assignment_id, "done": "1"}
    )
    assert status == 200
    assert "submitted" in page
    [listed] = client.list_assignments_for_hit(HITId=hit_id)["Assignments"]
    assert listed["AssignmentStatus"] == "Submitted"
    assert "<QuestionIdentifier>done</QuestionIdentifier>" in listed["Answer"]


def test_external_submit_without_an_assignment_id_changes_nothing(local_mturk, client):
    hit_id = make_hit(client)
    local_mturk.worker("AW1")
    local_mturk.accept("AW1", hit_id)
    status, page = local_mturk.post_form(
        "/mturk/externalSubmit", {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"}
    )
    assert status == 400
    assert "no assignmentId" in page
    assert client.list_assignments_for_hit(HITId=hit_id)["NumResults"] == 0


def test_notify_workers_takes_at_most_100_ids(client):
    with pytest.raises(botocore.exceptions.ClientError, match="1 to 100"):
        client.notify_workers(
            Subject="s", MessageText="m", WorkerIds=[f"AW{i}" for i in range(101)]
        )


def test_a_foreign_host_header_is_refused(local_mturk):
    """A web page that rebinds its own name to 127.0.0.1 reaches the endpoint with its Host."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(local_mturk.url)
    answers = []
    for host, path, method in (
        ("rebound.example:80", "/_control/balance", "POST"),
        ("rebound.example:80", "/worker/", "GET"),
        (where.netloc, "/_control/state", "GET"),
    ):
        connection = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
        connection.request(method, path, body=b'{"amount": "0.00"}', headers={"Host": host})
        answers.append(connection.getresponse().status)
        connection.close()

    assert answers == [400, 400, 200]
    assert local_mturk.store.counts()["balance"] == "10000.00"
