"""The worker's HIT as an attacker sees it: worker ids are not secret, the URL MTurk appends is
typed by anyone, and one person may open the page many times. Each test is an attack that
worked before the platform checked for it."""

from __future__ import annotations

import json

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.urls import reverse

from studyplatform.studies import forms
from studyplatform.studies.models import Assignment, Event, Study
from tests.studies.hit_helpers import build_study, hit_feature_set

pytestmark = pytest.mark.django_db
__all__ = ["hit_feature_set"]

SANDBOX = "https://workersandbox.mturk.com"


@pytest.fixture
def study(hit_feature_set):
    built = build_study(hit_feature_set)
    # Six places: repetitions count the distinct workers of each pair (one pair here).
    built.repetitions = 6
    built.save(update_fields=["repetitions"])
    return built


def open_hit(browser, study, *, worker="W1", assignment="A1", hit="H1", submit_to=SANDBOX):
    query = {"assignmentId": assignment, "hitId": hit, "workerId": worker}
    query["turkSubmitTo"] = submit_to
    return browser.get(reverse("hit:page", kwargs={"study": study.slug}), query)


def test_a_second_visit_with_the_victims_worker_id_cannot_take_over_their_hit(study):
    victim, attacker = Client(), Client()
    assert open_hit(victim, study, worker="WVICTIM", assignment="AVICTIM").status_code == 200
    mine = Assignment.objects.get()

    taken = open_hit(attacker, study, worker="WVICTIM", assignment="AATTACK", hit="H2")

    assert taken.status_code == 409
    assert "another MTurk assignment" in taken.content.decode()
    mine.refresh_from_db()
    assert (mine.mturk_assignment_id, mine.hit_id) == ("AVICTIM", "H1")
    assert attacker.get(f"/hit/{study.slug}/api/state").status_code == 403
    body = json.dumps({"assignment": mine.pk, "id": "x", "type": "page_view"})
    sent = attacker.post(f"/hit/{study.slug}/api/event", body, content_type="application/json")
    assert sent.status_code == 403
    assert not Event.objects.filter(client_event_id="x").exists()
    assert victim.get(f"/hit/{study.slug}/api/state").json()["state"]["assignment"] == mine.pk


def test_a_reload_of_the_same_assignment_still_opens_it(study):
    browser = Client()
    first = open_hit(browser, study)
    again = open_hit(browser, study)

    assert (first.status_code, again.status_code) == (200, 200)
    assert Assignment.objects.count() == 1


def test_binding_a_hit_gives_the_browser_a_new_session_key(study):
    browser = Client()
    planted = SessionStore()
    planted["seen"] = True
    planted.save()
    browser.cookies[django_settings.SESSION_COOKIE_NAME] = planted.session_key

    assert open_hit(browser, study).status_code == 200

    now = browser.cookies[django_settings.SESSION_COOKIE_NAME].value
    assert now != planted.session_key
    assert not SessionStore().exists(planted.session_key)
    assert SessionStore(session_key=now)[f"hit_assignment:{study.slug}"] == (
        Assignment.objects.get().pk
    )


BROWSER_TRICKS = [
    "https://evil.example\\.mturk.com",
    "https://evil.example\\www.mturk.com",
    "https:\\\\evil.example\\.mturk.com",
    "https://www.mturk.com@evil.example",
]


@pytest.mark.parametrize(
    "submit_to", [*BROWSER_TRICKS, "https://evil.example\t.mturk.com", "https://a%2f.mturk.com"]
)
def test_a_submit_host_a_browser_reads_elsewhere_is_refused(study, submit_to):
    response = open_hit(Client(), study, submit_to=submit_to)

    assert response.status_code == 400
    assert "turkSubmitTo" in response.content.decode()
    assert not Assignment.objects.exists()


def test_the_submit_host_is_read_as_chromium_reads_it():
    """Chromium's own URL parser agrees with ``url_as_browsers_read`` on every trick above,
    and every URL whose Chromium host is not MTurk's is refused."""
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=args)
        page = browser.new_page()
        hosts = page.evaluate("urls => urls.map(u => new URL(u).host)", BROWSER_TRICKS)
        ours = page.evaluate(
            "urls => urls.map(u => new URL(u).host)",
            [forms.url_as_browsers_read(u) for u in BROWSER_TRICKS],
        )
        browser.close()

    assert hosts == ["evil.example"] * len(BROWSER_TRICKS)
    assert ours == hosts
    assert not any(forms.submit_origin_allowed(url) for url in BROWSER_TRICKS)
    assert forms.submit_origin_allowed(SANDBOX)


def post(browser, study, action, body):
    return browser.post(
        f"/hit/{study.slug}/api/{action}", json.dumps(body), content_type="application/json"
    )


@pytest.mark.parametrize(
    "time", ["2026-02-30T10:00:00Z", "2026-03-01T10:00:00+25:00", "0001-01-01T00:00:00+05:00"]
)
def test_an_impossible_event_time_is_a_400_and_stores_nothing(study, time):
    browser = Client()
    open_hit(browser, study)
    mine = Assignment.objects.get()

    response = post(
        browser,
        study,
        "event",
        {"assignment": mine.pk, "id": "t", "type": "page_view", "time": time},
    )

    assert response.status_code == 400
    assert "date-time" in response.json()["error"]
    assert not Event.objects.filter(client_event_id="t").exists()


def test_an_infinite_likert_answer_is_a_400_and_stores_nothing(study):
    from studyplatform.studies.models import Response

    browser = Client()
    open_hit(browser, study)
    mine = Assignment.objects.get()
    post(browser, study, "tutorial", {"assignment": mine.pk})
    task = browser.get(f"/hit/{study.slug}/api/state").json()["state"]["task"]
    post(browser, study, "begin", {"assignment": mine.pk, "task": task["id"]})
    results = browser.get(f"/hit/{study.slug}/api/state").json()["state"]["task"]["results"]
    for card in results[: study.target_count]:
        body = {"id": f"r{card['id']}", "type": "marked_relevant", "task": task["id"]}
        post(browser, study, "event", {"assignment": mine.pk, **body, "image": card["id"]})
    questions = browser.get(f"/hit/{study.slug}/api/state").json()["state"]["questions"]
    likert = next(q["code"] for q in questions if q["scale"] != "text")
    body = '{"assignment": %d, "id": "q", "task": %d, "answers": {"%s": Infinity}}'

    response = browser.post(
        f"/hit/{study.slug}/api/answers",
        body % (mine.pk, task["id"], likert),
        content_type="application/json",
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert "Infinity" in error or likert in error  # the parser or the answer's check names it
    assert not Response.objects.exists()


def test_lab_mode_is_closed_unless_the_study_enables_it(study):
    Study.objects.filter(pk=study.pk).update(lab_enabled=False)

    page = Client().get(f"/lab/{study.slug}/")
    code = Client().post(f"/lab/{study.slug}/", {"code": "P-001"})

    assert (page.status_code, code.status_code) == (403, 403)
    assert "does not take lab participants" in code.content.decode()
    assert not Assignment.objects.exists()


def test_a_study_that_lists_its_lab_codes_takes_only_those(study):
    Study.objects.filter(pk=study.pk).update(lab_codes=["P-001"])

    stranger = Client().post(f"/lab/{study.slug}/", {"code": "P-999"})
    invited = Client().post(f"/lab/{study.slug}/", {"code": "P-001"})

    assert (stranger.status_code, invited.status_code) == (403, 302)
    assert list(Assignment.objects.values_list("participant__external_id", flat=True)) == ["P-001"]


@pytest.fixture
def limits(settings):
    """The limits a test sets, counted from zero (the cache is shared by the whole process)."""
    from django.core.cache import cache

    cache.clear()
    yield settings
    cache.clear()


def lab_code(study, code, ip="10.0.0.1", **headers):
    return Client(REMOTE_ADDR=ip, headers=headers).post(f"/lab/{study.slug}/", {"code": code})


def test_one_client_cannot_open_hits_under_many_fake_ids(study, limits):
    limits.HIT_OPEN_PER_IP_PER_10_MINUTES = 3

    codes = [lab_code(study, f"FAKE{i}").status_code for i in range(5)]
    pages = [
        open_hit(Client(REMOTE_ADDR="10.0.0.1"), study, worker=f"AFAKE{i}", assignment=f"A{i}")
        for i in range(2)
    ]

    assert codes == [302, 302, 302, 429, 429]
    assert [page.status_code for page in pages] == [429, 429]
    assert pages[0]["Retry-After"] == "600"
    assert Assignment.objects.count() == 3


def test_a_forged_forwarded_for_header_does_not_reset_the_count(study, limits):
    limits.HIT_OPEN_PER_IP_PER_10_MINUTES = 2
    forged = [
        lab_code(study, f"FAKE{i}", X_Forwarded_For=f"192.0.2.{i}").status_code for i in range(3)
    ]
    limits.TRUSTED_PROXY_COUNT = 1  # behind one proxy, the address it saw is the client's
    behind = [
        lab_code(study, f"PROXIED{i}", X_Forwarded_For=f"203.0.113.9, 198.51.100.{i}").status_code
        for i in range(2)
    ]

    assert forged == [302, 302, 429]
    assert behind == [302, 302]


def test_many_clients_cannot_open_a_study_faster_than_its_limit(study, limits):
    limits.HIT_OPEN_PER_STUDY_PER_MINUTE = 4

    codes = [lab_code(study, f"FAKE{i}", ip=f"10.0.1.{i}").status_code for i in range(6)]

    assert codes == [302, 302, 302, 302, 429, 429]


def test_participants_who_do_nothing_hold_at_most_a_share_of_the_places_and_not_for_long(
    study, limits
):
    import datetime as dt

    from django.utils import timezone

    limits.HIT_NO_PROGRESS_MAX_SHARE = 0.5  # 3 of the study's 6 places
    limits.HIT_NO_PROGRESS_MINUTES = 20
    squatters = [Client(REMOTE_ADDR=f"10.0.2.{i}") for i in range(4)]
    codes = [
        c.post(f"/lab/{study.slug}/", {"code": f"FAKE{i}"}).status_code
        for i, c in enumerate(squatters)
    ]
    assert codes == [302, 302, 302, 409]

    # They keep their places alive with an event every few minutes, but never begin a task.
    Assignment.objects.update(started_at=timezone.now() - dt.timedelta(minutes=21))
    for i, squatter in enumerate(squatters[:3]):
        mine = Assignment.objects.get(participant__external_id=f"FAKE{i}")
        body = {"assignment": mine.pk, "id": f"keepalive{i}", "type": "page_view"}
        assert post(squatter, study, "event", body).status_code == 200

    assert lab_code(study, "REAL1", ip="10.0.3.1").status_code == 302
    statuses = dict(Assignment.objects.values_list("participant__external_id", "status"))
    assert statuses == {
        "FAKE0": "abandoned",
        "FAKE1": "abandoned",
        "FAKE2": "abandoned",
        "REAL1": "active",
    }


def test_the_json_endpoints_are_rate_limited_per_client_and_per_study(study, limits):
    limits.HIT_API_RATE_PER_IP = "3/minute"
    squatter = Client(REMOTE_ADDR="10.0.4.1")
    assert open_hit(squatter, study, worker="W1", assignment="A1").status_code == 200
    mine = Assignment.objects.get()
    body = {"assignment": mine.pk, "type": "page_view"}

    sent = [post(squatter, study, "event", {**body, "id": f"k{i}"}) for i in range(5)]

    assert [r.status_code for r in sent] == [200, 200, 200, 429, 429]
    assert "Retry-After" in sent[3]
    assert Event.objects.filter(client_event_id__startswith="k").count() == 3

    from django.core.cache import cache

    limits.HIT_API_RATE_PER_IP = "1000/minute"
    limits.HIT_API_RATE_PER_STUDY = "2/minute"
    others = [Client(REMOTE_ADDR=f"10.0.5.{i}") for i in range(3)]
    for i, other in enumerate(others):
        assert open_hit(other, study, worker=f"W{i + 2}", assignment=f"A{i + 2}").status_code == 200
    cache.clear()
    states = [other.get(f"/hit/{study.slug}/api/state").status_code for other in others]
    assert states == [200, 200, 429]
