"""The worker's HIT over HTTP: MTurk parameters, the session-bound JSON endpoints, bad input."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from django.urls import reverse

from studyplatform.studies.models import Assignment, Event, IQRRound, Participant, Response
from tests.studies.hit_helpers import build_study, hit_feature_set, write_overlays

pytestmark = pytest.mark.django_db
__all__ = ["hit_feature_set"]

SANDBOX = "https://workersandbox.mturk.com"


@pytest.fixture
def study(hit_feature_set):
    return build_study(hit_feature_set)


def params(worker="W1", assignment="A1", **extra):
    return {
        "assignmentId": assignment,
        "hitId": "H1",
        "workerId": worker,
        "turkSubmitTo": SANDBOX,
        **extra,
    }


def accept(client, study, worker="W1", assignment="A1") -> Assignment:
    response = client.get(
        reverse("hit:page", kwargs={"study": study.slug}), params(worker, assignment)
    )
    assert response.status_code == 200, response.content
    return Assignment.objects.get(mturk_assignment_id=assignment)


def post(client, study, action, body, assignment=None):
    body = {"assignment": assignment.pk if assignment else None, **body}
    return client.post(
        f"/hit/{study.slug}/api/{action}", json.dumps(body), content_type="application/json"
    )


def state(client, study) -> dict:
    return client.get(f"/hit/{study.slug}/api/state").json()["state"]


def begin_first_task(client, study, assignment) -> dict:
    post(client, study, "tutorial", {}, assignment)
    intro = state(client, study)
    return post(client, study, "begin", {"task": intro["task"]["id"]}, assignment).json()["state"]


def test_the_preview_explains_the_task_and_records_nothing(client, study):
    response = client.get(f"/hit/{study.slug}/", {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "Accept the HIT to begin" in html
    assert "<form" not in html
    assert "hit.js" not in html
    assert not Participant.objects.exists()
    assert "X-Frame-Options" not in response.headers
    assert "https://*.mturk.com" in response.headers["Content-Security-Policy"]


def test_every_other_page_still_refuses_to_be_framed(client):
    assert client.get("/").headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({}, ["assignmentId", "hitId", "workerId", "turkSubmitTo"]),
        (params(turkSubmitTo="https://evil.example.org"), ["turkSubmitTo"]),
        (params(turkSubmitTo="http://workersandbox.mturk.com"), ["turkSubmitTo"]),
        (params(turkSubmitTo="https://www.mturk.com.evil.org"), ["turkSubmitTo"]),
        (params(worker="<script>alert(1)</script>"), ["workerId"]),
        (params(assignment="A" * 65), ["assignmentId"]),
    ],
)
def test_malformed_mturk_parameters_get_an_explanatory_page_and_nothing_is_stored(
    client, study, query, named
):
    response = client.get(f"/hit/{study.slug}/", query)

    html = response.content.decode()
    assert response.status_code == 400
    for name in named:
        assert name in html
    assert "<script>alert" not in html
    assert not Assignment.objects.exists()


def test_a_local_mturk_endpoint_is_allowed_only_when_configured(client, study, settings):
    local = "http://127.0.0.1:4000"
    refused = client.get(f"/hit/{study.slug}/", params(turkSubmitTo=local))
    settings.HIT_EXTRA_SUBMIT_ORIGINS = [local]
    allowed = client.get(f"/hit/{study.slug}/", params(turkSubmitTo=local))

    assert (refused.status_code, allowed.status_code) == (400, 200)
    assert Assignment.objects.get().turk_submit_to == local


def test_an_unknown_study_gets_a_404_page(client, study):
    assert client.get("/hit/nope/", params()).status_code == 404


def test_accepting_binds_the_session_and_the_page_starts_with_the_tutorial(client, study):
    assignment = accept(client, study)

    first = state(client, study)
    again = accept(client, study)

    assert again.pk == assignment.pk
    assert first["stage"] == "tutorial"
    assert first["assignment"] == assignment.pk
    assert len(first["tutorial"]["images"]) == 4
    practice = client.get(f"/hit/{study.slug}/image/{first['tutorial']['images'][0]}")
    assert practice.status_code == 200
    assert client.session[f"hit_assignment:{study.slug}"] == assignment.pk


def test_another_workers_assignment_id_is_refused(client, study):
    accept(client, study, worker="W1", assignment="A1")

    response = client.get(f"/hit/{study.slug}/", params(worker="W2", assignment="A1"))

    assert response.status_code == 403
    assert Assignment.objects.count() == 1


def test_json_endpoints_refuse_another_workers_assignment(client, study):
    mine = accept(client, study, "W1", "A1")
    other_client = Client()
    theirs = accept(other_client, study, "W2", "A2")
    their_state = begin_first_task(other_client, study, theirs)
    their_task = their_state["task"]

    as_them = post(client, study, "event", {"id": "e1", "type": "page_view"}, theirs)
    their_image = their_task["results"][0]["id"]
    into_their_task = post(
        client,
        study,
        "event",
        {"id": "e2", "type": "marked_relevant", "task": their_task["id"], "image": their_image},
        mine,
    )
    no_session = Client().get(f"/hit/{study.slug}/api/state")

    assert as_them.status_code == 403
    assert into_their_task.status_code == 403
    assert no_session.status_code == 403
    assert not Event.objects.filter(client_event_id__in=["e1", "e2"]).exists()


def test_an_event_sent_twice_is_stored_once(client, study):
    assignment = accept(client, study)
    task = begin_first_task(client, study, assignment)["task"]
    body = {"id": "mark-1", "type": "marked_not_relevant", "task": task["id"]}
    body["image"] = task["results"][0]["id"]

    first = post(client, study, "event", body, assignment)
    second = post(client, study, "event", body, assignment)

    assert (first.json()["created"], second.json()["created"]) == (True, False)
    assert Event.objects.filter(client_event_id="mark-1").count() == 1
    assert second.json()["state"]["task"]["not_relevant"] == [
        {"id": body["image"], "overlay": False}
    ]


def test_a_retried_refine_request_spends_one_round(client, study):
    assignment = accept(client, study)
    task = begin_first_task(client, study, assignment)["task"]

    one = post(client, study, "refine", {"id": "refine-a", "task": task["id"]}, assignment)
    two = post(client, study, "refine", {"id": "refine-a", "task": task["id"]}, assignment)

    assert one.status_code == two.status_code == 200
    assert two.json()["state"]["task"]["rounds_left"] == 1
    assert IQRRound.objects.filter(task_id=task["id"]).count() == 2


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{not json", 400),
        ("[1, 2]", 400),
        (json.dumps({"type": "page_view", "id": "x"}), 403),
        (json.dumps({"type": "page_view", "id": "x", "assignment": 987654}), 403),
        (json.dumps({"type": "shown", "id": "x", "assignment": "ME"}), 400),
        (json.dumps({"type": "marked_relevant", "id": "x", "task": "1", "assignment": "ME"}), 400),
        (json.dumps({"type": "page_view", "id": "x" * 70, "assignment": "ME"}), 400),
        (json.dumps({"type": "page_view", "id": "x", "assignment": "ME", "pad": "y" * 20000}), 413),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_store_nothing(client, study, body, status):
    assignment = accept(client, study)
    before = Event.objects.count()

    response = client.post(
        f"/hit/{study.slug}/api/event",
        body.replace('"ME"', str(assignment.pk)),
        content_type="application/json",
    )

    assert response.status_code == status
    assert response.json()["error"]
    assert Event.objects.count() == before


def test_out_of_order_requests_are_refused(client, study):
    assignment = accept(client, study)
    post(client, study, "tutorial", {}, assignment)
    second = assignment.tasks.get(position=2)

    early_begin = post(client, study, "begin", {"task": second.pk}, assignment)
    early_final = post(
        client,
        study,
        "answers",
        {"id": "q", "task": None, "answers": {"prefer-maps": 3}},
        assignment,
    )
    early_submit = post(client, study, "submit", {}, assignment)

    assert [r.status_code for r in (early_begin, early_final, early_submit)] == [409, 409, 409]
    assert "task 2 cannot begin" in early_begin.json()["error"]
    assert not Response.objects.exists()
    assert Assignment.objects.get().status == "active"


def test_images_are_served_only_for_this_assignment(client, study):
    assignment = accept(client, study)
    task = begin_first_task(client, study, assignment)["task"]
    shown = task["results"][0]["id"]
    pool_or_query = set(IQRRound.objects.get(task_id=task["id"]).ranking) | {task["query"]}
    hidden = (
        study.archive.images.exclude(pk__in=pool_or_query)
        .exclude(pk__in=state(client, study).get("tutorial", {}).get("images", []))
        .order_by("-pk")
        .first()
    )

    ok = client.get(f"/hit/{study.slug}/image/{shown}")
    refused = client.get(f"/hit/{study.slug}/image/{hidden.pk}")
    stranger = Client()

    assert ok.status_code == 200
    assert ok["Content-Type"] == "image/jpeg"
    assert refused.status_code == 404
    assert stranger.get(f"/hit/{study.slug}/image/{shown}").status_code == 403


def finish_by_target(client, study, assignment, task_id):
    """Mark the first target-count results relevant (the task ends) and answer its questions."""
    results = state(client, study)["task"]["results"]
    for card in results[: study.target_count]:
        body = {"id": f"r{card['id']}", "type": "marked_relevant", "task": task_id}
        post(client, study, "event", {**body, "image": card["id"]}, assignment)
    questions = state(client, study)["questions"]
    answers = {q["code"]: 4 for q in questions if q["scale"] != "text"}
    body = {"id": f"q{task_id}", "task": task_id, "answers": answers}
    assert post(client, study, "answers", body, assignment).status_code == 200


def test_a_with_xai_result_without_an_overlay_is_shown_plain_and_said_so(client, study):
    write_overlays(study, skip=1)  # the nearest pool image of each with-XAI query has no map
    assignment = accept(client, study)
    post(client, study, "tutorial", {}, assignment)
    xai_task = next(t for t in assignment.tasks.all() if t.condition.is_xai)
    if xai_task.position == 2:
        first = assignment.tasks.get(position=1)
        post(client, study, "begin", {"task": first.pk}, assignment)
        finish_by_target(client, study, assignment, first.pk)

    begun = post(client, study, "begin", {"task": xai_task.pk}, assignment)

    cards = begun.json()["state"]["task"]["results"]
    shown = Event.objects.get(task=xai_task, type="shown")
    assert begun.json()["state"]["task"]["xai"] is True
    assert cards[0]["overlay"] is False
    assert all(card["overlay"] for card in cards[1:])
    assert shown.payload["overlays_missing"] == [cards[0]["id"]]
    overlay = client.get(f"/hit/{study.slug}/image/{cards[1]['id']}?overlay={xai_task.pk}")
    missing = client.get(f"/hit/{study.slug}/image/{cards[0]['id']}?overlay={xai_task.pk}")
    assert (overlay.status_code, overlay["Content-Type"]) == (200, "image/png")
    assert missing.status_code == 404


def test_lab_mode_asks_for_a_code_then_opens_the_hit(client, study):
    form = client.get(f"/lab/{study.slug}/")
    bad = client.post(f"/lab/{study.slug}/", {"code": "<b>x</b>"})
    good = client.post(f"/lab/{study.slug}/", {"code": "P-001"}, follow=True)

    assert "Participant code" in form.content.decode()
    assert bad.status_code == 400
    assert "<b>x</b>" not in bad.content.decode()
    assert good.status_code == 200
    assert "hit-config" in good.content.decode()
    assert Assignment.objects.get().participant.external_id == "P-001"


def test_a_post_without_the_csrf_token_is_refused(study):
    browser = Client(enforce_csrf_checks=True)
    assignment = accept(browser, study)
    body = json.dumps({"assignment": assignment.pk, "id": "e", "type": "page_view"})

    refused = browser.post(f"/hit/{study.slug}/api/event", body, content_type="application/json")
    allowed = browser.post(
        f"/hit/{study.slug}/api/event",
        body,
        content_type="application/json",
        headers={"X-CSRFToken": browser.cookies["csrftoken"].value},
    )

    assert (refused.status_code, allowed.status_code) == (403, 200)
    assert Event.objects.filter(client_event_id="e").count() == 1


def test_a_submitted_worker_who_reloads_gets_the_submit_form_again(client, study):
    assignment = accept(client, study)
    Assignment.objects.filter(pk=assignment.pk).update(status="submitted")

    again = client.get(f"/hit/{study.slug}/", params())
    done = state(client, study)

    assert again.status_code == 200
    assert done["stage"] == "done"
    assert done["done"] == {
        "completion_code": "",
        "submit_url": SANDBOX + "/mturk/externalSubmit",
        "assignment_id": "A1",
    }


def test_cross_site_cookies_for_the_iframe_are_a_setting(tmp_path):
    from tests.studyplatform.test_settings import settings_of

    names = ("SESSION_COOKIE_SAMESITE", "CSRF_COOKIE_SAMESITE", "SESSION_COOKIE_SECURE")
    default = settings_of("studyplatform.settings.dev", {}, tmp_path, *names)
    framed = settings_of(
        "studyplatform.settings.dev", {"HIT_CROSS_SITE_COOKIES": "1"}, tmp_path, *names
    )

    assert default == {
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": False,
    }
    assert framed == {
        "SESSION_COOKIE_SAMESITE": "None",
        "CSRF_COOKIE_SAMESITE": "None",
        "SESSION_COOKIE_SECURE": True,
    }
