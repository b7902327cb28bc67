"""The worker's JSON API as DRF views: who may ask, what a bad body gets, what is never cached.

Every endpoint answers a malformed body with a 400 or 413 naming what is wrong and stores
nothing; a request without the session's assignment, about another assignment or without the
CSRF token is a 403; the ``{"error": ...}`` answers belong to these views only.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from studyplatform.studies.models import Assignment, Event, IQRRound, Response, SearchTask
from tests.studies.hit_helpers import build_study, hit_feature_set

pytestmark = pytest.mark.django_db
__all__ = ["hit_feature_set"]

POSTS = ("event", "begin", "refine", "finish", "answers", "tutorial", "submit")


@pytest.fixture
def study(hit_feature_set):
    return build_study(hit_feature_set)


def accept(client: Client, study, worker: str = "W1") -> Assignment:
    params = {
        "assignmentId": f"A{worker}",
        "hitId": "H1",
        "workerId": worker,
        "turkSubmitTo": "https://workersandbox.mturk.com",
    }
    assert client.get(f"/hit/{study.slug}/", params).status_code == 200
    return Assignment.objects.get(mturk_assignment_id=f"A{worker}")


def send(client: Client, study, action: str, body, **extra):
    """POST ``body`` (a str or bytes as it is, anything else as JSON) to ``api/<action>``."""
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        f"/hit/{study.slug}/api/{action}", data, content_type="application/json", **extra
    )


def rows() -> tuple[int, ...]:
    """Everything a worker's request can write, counted."""
    return (
        Event.objects.count(),
        IQRRound.objects.count(),
        Response.objects.count(),
        SearchTask.objects.filter(started_at__isnull=False).count(),
        SearchTask.objects.filter(ended_at__isnull=False).count(),
        Assignment.objects.exclude(status="active").count(),
    )


@pytest.fixture
def running(client, study):
    """A worker past the tutorial whose first task has begun: (assignment, task id)."""
    assignment = accept(client, study)
    assert send(client, study, "tutorial", {"assignment": assignment.pk}).status_code == 200
    task = assignment.tasks.get(position=1)
    begun = send(client, study, "begin", {"assignment": assignment.pk, "task": task.pk})
    assert begun.status_code == 200, begun.content
    return assignment, task.pk


@pytest.mark.parametrize("action", POSTS)
def test_a_malformed_body_is_a_400_or_413_saying_why_on_every_endpoint(
    client, study, running, settings, action
):
    assignment, _ = running
    me = assignment.pk
    bodies = [
        ("{not json", 400, "not JSON"),
        (b"\xff\xfe{}", 400, "not JSON"),
        ('{"assignment": NaN}', 400, "not JSON"),
        ("[1, 2]", 400, "a JSON object"),
        ('"text"', 400, "a JSON object"),
        ("null", 400, "a JSON object"),
        ("[" * 3000 + "]" * 3000, 400, "nested too deeply"),
        ("{" + f'"assignment": {me}, "pad": "' + "y" * 20000 + '"}', 413, "body over 16384 bytes"),
    ]
    before = rows()

    answers = [send(client, study, action, body) for body, _, _ in bodies]

    assert [(r.status_code, r["Content-Type"]) for r in answers] == [
        (status, "application/json") for _, status, _ in bodies
    ]
    for response, (_, _, says) in zip(answers, bodies, strict=True):
        assert says in response.json()["error"]
    assert rows() == before


def test_each_field_of_each_endpoint_is_checked_and_named(client, study, running):
    assignment, task = running
    me = {"assignment": assignment.pk}
    event = {**me, "id": "e-1", "type": "page_view"}
    cases = [
        ("event", {**me, "type": "page_view"}, 400, "id: This field is required."),
        ("event", {**event, "id": 7}, 400, "id: must be a string, not int."),
        ("event", {**event, "id": "x" * 70}, 400, "client_event_id must be 1-64"),
        ("event", {**me, "id": "e"}, 400, "type: This field is required."),
        ("event", {**event, "type": "shown"}, 400, "type: event type 'shown' cannot be sent"),
        ("event", {**event, "type": ["page_view"]}, 400, "type:"),
        ("event", {**event, "task": "1"}, 400, "task: A valid integer is required."),
        ("event", {**event, "task": True}, 400, "task: A valid integer is required."),
        ("event", {**event, "task": 10**30}, 403, "not one of this assignment's"),
        ("event", {**event, "image": 1.5}, 400, "image: A valid integer is required."),
        ("event", {**event, "image": 10**30}, 400, "never shown"),
        ("event", {**event, "round": 100}, 400, "round: Ensure this value is less than"),
        ("event", {**event, "round": -1}, 400, "round: Ensure this value is greater than"),
        ("event", {**event, "payload": [1]}, 400, "payload: Expected a dictionary"),
        ("event", {**event, "time": 5}, 400, "time: must be a string, not int."),
        ("event", {**event, "time": "yesterday"}, 400, "client_time 'yesterday'"),
        ("event", {**event, "type": "marked_relevant"}, 400, "a judgement needs a task"),
        ("begin", me, 400, "task: This field is required."),
        ("begin", {**me, "task": None}, 400, "task: This field may not be null."),
        ("begin", {**me, "task": 0}, 400, "task: Ensure this value is greater than"),
        ("begin", {**me, "task": 10**30}, 403, "not one of this assignment's"),
        ("refine", {**me, "task": task}, 400, "id: This field is required."),
        ("refine", {**me, "id": "r"}, 400, "task: This field is required."),
        ("finish", {**me, "task": "x"}, 400, "task: A valid integer is required."),
        ("answers", {**me, "id": "q", "task": task}, 400, "answers: This field is required."),
        ("answers", {**me, "id": "q", "answers": "4"}, 400, "answers: Expected a dictionary"),
        ("answers", {**me, "answers": {}}, 400, "id: This field is required."),
        ("answers", {**me, "id": "q", "task": "1", "answers": {}}, 400, "task: A valid integer"),
    ]
    before = rows()

    answers = [send(client, study, action, body) for action, body, _, _ in cases]

    seen = [(r.status_code, r.json()["error"]) for r in answers]
    assert [status for status, _ in seen] == [status for _, _, status, _ in cases], seen
    for (_, error), (action, _, _, says) in zip(seen, cases, strict=True):
        assert says in error, (action, error)
    assert rows() == before


def test_two_bad_fields_are_both_named(client, study, running):
    assignment, _ = running

    response = send(client, study, "event", {"assignment": assignment.pk, "round": "1"})

    error = response.json()["error"]
    assert response.status_code == 400
    assert "id: This field is required." in error
    assert "type: This field is required." in error
    assert "round: A valid integer is required." in error


@pytest.mark.parametrize("action", POSTS)
def test_every_endpoint_refuses_a_body_about_another_assignment(client, study, action):
    mine = accept(client, study, "W1")
    theirs = accept(Client(), study, "W2")
    before = rows()

    answers = [
        send(client, study, action, {"assignment": named, "id": "x", "task": None})
        for named in (theirs.pk, str(mine.pk), True, None)
    ]
    unnamed = send(client, study, action, "")

    assert [r.status_code for r in [*answers, unnamed]] == [403] * 5
    assert {r.json()["error"] for r in answers} == {"that is not this browser's assignment"}
    assert rows() == before


def test_the_session_holds_an_assignment_of_the_study_in_the_url_only(client, study):
    other = build_study(study.feature_set, slug="other-study")
    mine = accept(client, study)

    here = client.get(f"/hit/{study.slug}/api/state")
    there = client.get(f"/hit/{other.slug}/api/state")
    posted_there = send(client, other, "tutorial", {"assignment": mine.pk})
    stranger = Client().get(f"/hit/{study.slug}/api/state")

    assert here.status_code == 200
    assert [r.status_code for r in (there, posted_there, stranger)] == [403, 403, 403]
    assert there.json() == {"error": "no HIT of this study is open in this browser"}
    assert not Event.objects.exists()


def test_csrf_is_enforced_with_a_json_answer_and_nothing_written(study):
    browser = Client(enforce_csrf_checks=True)
    assignment = accept(browser, study)
    body = {"assignment": assignment.pk}
    token = {"X-CSRFToken": browser.cookies["csrftoken"].value}

    refused = send(browser, study, "tutorial", body)
    wrong = send(browser, study, "tutorial", body, headers={"X-CSRFToken": "x" * 32})
    broken = send(browser, study, "tutorial", "{not json")  # the body is read before the token
    state = browser.get(f"/hit/{study.slug}/api/state")  # a safe method needs no token
    allowed = send(browser, study, "tutorial", body, headers=token)

    assert [r.status_code for r in (refused, wrong)] == [403, 403]
    assert refused.json()["error"].startswith("CSRF Failed")
    assert broken.status_code == 400
    assert state.status_code == 200
    assert allowed.status_code == 200
    assert Event.objects.count() == 1


def test_answers_are_never_cached_and_may_be_framed_while_images_are_cached(client, study, running):
    assignment, task = running
    ok = client.get(f"/hit/{study.slug}/api/state")
    refused = send(client, study, "finish", {"assignment": assignment.pk, "task": task})
    image_id = ok.json()["state"]["task"]["results"][0]["id"]
    image = client.get(f"/hit/{study.slug}/image/{image_id}", headers={"Accept": "image/webp"})

    assert refused.status_code == 409
    for response in (ok, refused):
        assert "no-store" in response["Cache-Control"]
        assert "X-Frame-Options" not in response
    assert (image.status_code, image["Content-Type"]) == (200, "image/jpeg")
    assert image["Cache-Control"] == "private, max-age=3600"


def test_a_wrong_method_or_overlay_is_refused_with_a_reason(client, study, running):
    assignment, task = running
    image_id = client.get(f"/hit/{study.slug}/api/state").json()["state"]["task"]["query"]

    get_event = client.get(f"/hit/{study.slug}/api/event")
    post_state = send(client, study, "state", {"assignment": assignment.pk})
    words = client.get(f"/hit/{study.slug}/image/{image_id}?overlay=abc")
    huge = client.get(f"/hit/{study.slug}/image/{image_id}?overlay={'9' * 30}")
    plain_task = client.get(f"/hit/{study.slug}/image/{image_id}?overlay={task}")

    assert (get_event.status_code, post_state.status_code) == (405, 405)
    assert 'Method "GET" not allowed.' in get_event.json()["error"]
    assert (words.status_code, words.json()["error"]) == (
        400,
        "overlay must be a task id, not 'abc'",
    )
    assert huge.status_code == 403
    assert plain_task.status_code == 404  # a no-XAI task has no overlays


def test_the_error_answers_belong_to_the_worker_api_only(admin_client, client, study):
    researcher = admin_client.post(
        f"/api/studies/{study.slug}/status/", {"status": "nope"}, content_type="application/json"
    )
    worker = client.get(f"/hit/{study.slug}/api/state")

    assert researcher.status_code == 400
    assert "status" in researcher.json()
    assert "error" not in researcher.json()
    assert worker.json() == {"error": "no HIT of this study is open in this browser"}


def test_the_judgement_that_reaches_the_target_ends_the_task_and_a_resend_changes_nothing(
    client, study, running
):
    assignment, task = running
    cards = client.get(f"/hit/{study.slug}/api/state").json()["state"]["task"]["results"]
    marks = [
        {
            "assignment": assignment.pk,
            "id": f"rel-{card['id']}",
            "type": "marked_relevant",
            "task": task,
            "image": card["id"],
        }
        for card in cards[: study.target_count]
    ]

    answers = [send(client, study, "event", body).json() for body in marks]
    resent = send(client, study, "event", marks[-1])

    ended = SearchTask.objects.get(pk=task)
    assert [a["state"]["stage"] for a in answers] == ["task", "task", "questionnaire"]
    assert (resent.status_code, resent.json()["created"]) == (200, False)
    assert ended.end_reason == "target_reached"
    assert Event.objects.filter(task_id=task, type="task_end").count() == 1
