"""A whole HIT in Chromium, from MTurk's preview to the externalSubmit POST, and a network
failure in the middle of a task that loses no event.

Runs the demo study (``demo_study``) on pytest-django's live server; overlays are written
directly (``hit_helpers.write_overlays``). Screenshots go to each test's ``tmp_path``
(``screens/``), kept by pytest under its base temporary folder.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode

import pytest

from studyplatform.studies.models import Assignment, Event, IQRRound, Participant, Response
from tests.studies.hit_helpers import write_overlays

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MARKS = ("marked_relevant", "marked_not_relevant", "unmarked")


@pytest.fixture(autouse=True)
def _database_beside_playwright(monkeypatch):
    # Playwright's sync API keeps an event loop running in the test's thread; the test's own
    # database reads are still plain synchronous calls, so Django's guard is lifted for them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def study(demo_study, settings, live_server):
    settings.HIT_EXTRA_SUBMIT_ORIGINS = [live_server.url]
    write_overlays(demo_study)
    return demo_study


def occupy(study, order: str) -> None:
    """One submitted assignment in every (pair, ``order``) cell, so the emptiest cells, which
    ``assignment_start`` hands out first, are those of the other order."""
    for pair in study.task_pairs.all():
        participant = Participant.objects.create(source="mturk", external_id=f"OLD{pair.pk}{order}")
        Assignment.objects.create(
            study=study, participant=participant, task_pair=pair, order=order, status="submitted"
        )


def hit_url(live_server, study, assignment_id: str, worker: str = "WORKERB1") -> str:
    query = {
        "assignmentId": assignment_id,
        "hitId": "HITB1",
        "workerId": worker,
        "turkSubmitTo": live_server.url,
    }
    return f"{live_server.url}/hit/{study.slug}/?{urlencode(query)}"


def answer_questions(page, text: str = "") -> None:
    for fieldset in page.locator("#hit-questions fieldset").all():
        radios = fieldset.locator("input[type=radio]")
        if radios.count():
            radios.nth(3).check()
        elif text:
            fieldset.locator("textarea").fill(text)
    page.click("#hit-questions button[type=submit]")


def do_task(page, study, shots, position: int) -> None:
    page.click("#hit-begin")
    page.wait_for_selector("#hit-results figure")
    xai = page.locator("#hit-results img[src*='overlay=']").count() > 0
    shots(f"task{position}-round0")
    if xai:
        overlay = page.locator("#hit-results img[src*='overlay=']").first
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=overlay.element_handle()
        )
        assert overlay.evaluate("img => img.naturalWidth") == 64  # the test's overlay PNG
        page.locator("#hit-results .hit-toggle").first.click()
    before = page.locator("#hit-results figure").evaluate_all(
        "cards => cards.map(c => c.dataset.image)"
    )
    page.locator("#hit-results figure").first.locator(".hit-no").click()
    page.wait_for_selector(".hit-right figure")
    page.keyboard.press("f")  # refine
    page.wait_for_selector("text=refines left: 1")
    after = page.locator("#hit-results figure").evaluate_all(
        "cards => cards.map(c => c.dataset.image)"
    )
    assert after != before
    shots(f"task{position}-round1")
    for found in range(1, study.target_count + 1):
        page.locator("#hit-results figure").first.locator(".hit-yes").click()
        if found < study.target_count:
            page.wait_for_selector(f"text=Found: {found} of {study.target_count}")
    page.wait_for_selector("#hit-questions")
    answer_questions(page)
    return xai


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_a_whole_hit_from_preview_to_the_externalsubmit_post(
    browser_page, live_server, study, tmp_path, order
):
    page = browser_page
    occupy(study, "ba" if order == "ab" else "ab")
    (tmp_path / "screens").mkdir()

    def shots(name: str) -> None:
        page.screenshot(path=str(tmp_path / "screens" / f"{order}-{name}.png"), full_page=True)

    posted: list[dict] = []

    def external_submit(route):
        posted.append(parse_qs(route.request.post_data or ""))
        route.fulfill(status=200, content_type="text/html", body="<p>received</p>")

    page.route(f"{live_server.url}/mturk/externalSubmit", external_submit)

    page.goto(hit_url(live_server, study, "ASSIGNMENT_ID_NOT_AVAILABLE"))
    page.wait_for_selector("text=Accept the HIT to begin")
    assert page.locator("button:not([disabled])").count() == 0
    shots("preview")
    assert not Assignment.objects.filter(mturk_assignment_id__startswith="ASSIGNB").exists()

    page.goto(hit_url(live_server, study, "ASSIGNB1"))
    page.wait_for_selector("#hit-tutorial-done")
    page.wait_for_function(
        "[...document.images].every(img => img.complete && img.naturalWidth > 0)"
    )
    shots("tutorial")
    page.click("#hit-tutorial-done")
    xai_seen = [do_task(page, study, shots, 1)]
    xai_seen.append(do_task(page, study, shots, 2))
    page.wait_for_selector("text=Last questions")
    answer_questions(page, text="<img src=x onerror=alert(1)> fine")
    page.wait_for_selector("#hit-submit")
    shots("submit")
    page.click("#hit-submit")
    page.wait_for_selector("text=received")

    assignment = Assignment.objects.get(mturk_assignment_id="ASSIGNB1")
    assert assignment.order == order
    assert assignment.status == "submitted"
    assert posted == [{"assignmentId": ["ASSIGNB1"], "completed": ["1"]}]
    xai_first = assignment.tasks.get(position=1).condition.is_xai
    assert xai_seen == [xai_first, not xai_first]
    for task in assignment.tasks.all():
        assert task.end_reason == "target_reached"
        assert IQRRound.objects.filter(task=task).count() == 2
        assert task.events.filter(type__in=MARKS).count() == 1 + study.target_count
    assert assignment.events.filter(type="viewed_plain").count() == 1
    comment = Response.objects.get(assignment=assignment, question__code="comments")
    assert comment.text == "<img src=x onerror=alert(1)> fine"
    assert Response.objects.filter(assignment=assignment).count() == 2 + 3 + 2


def test_a_network_failure_mid_task_loses_no_event(browser_page, live_server, study, tmp_path):
    page = browser_page
    page.goto(hit_url(live_server, study, "ASSIGNB2", worker="WORKERB2"))
    page.click("#hit-tutorial-done")
    page.click("#hit-begin")
    page.wait_for_selector("#hit-results figure")
    page.route("**/api/event", lambda route: route.abort("internetdisconnected"))

    cards = page.locator("#hit-results figure")
    cards.nth(0).locator(".hit-no").click()
    cards.nth(0).locator(".hit-no").click()
    page.locator(".hit-right .hit-undo").first.click()
    cards.nth(1).locator(".hit-yes").click()
    page.wait_for_selector("text=Connection problem")
    page.screenshot(path=str(tmp_path / "offline.png"), full_page=True)
    queued = "window.hitDebug.queue().filter(i => i.body.type && i.body.type !== 'page_view')"
    assert page.evaluate(queued + ".length") == 4
    page.reload()  # the queue survives in localStorage
    page.wait_for_selector("text=Connection problem")
    page.unroute("**/api/event")

    page.wait_for_function("window.hitDebug.queue().length === 0", timeout=30_000)
    page.wait_for_selector(".hit-left figure")
    assignment = Assignment.objects.get(mturk_assignment_id="ASSIGNB2")
    marks = list(
        Event.objects.filter(assignment=assignment, type__in=MARKS).values_list("type", flat=True)
    )
    assert marks == ["marked_not_relevant", "marked_not_relevant", "unmarked", "marked_relevant"]


def test_a_lab_session_from_the_participant_code_to_the_completion_code(
    browser_page, live_server, study, tmp_path
):
    page = browser_page
    (tmp_path / "screens").mkdir()

    def shots(name: str) -> None:
        page.screenshot(path=str(tmp_path / "screens" / f"lab-{name}.png"), full_page=True)

    page.goto(f"{live_server.url}/lab/{study.slug}/")
    page.click("text=Begin")  # no code: the browser keeps the form, nothing is recorded
    assert page.locator("#id_code:invalid").count() == 1
    assert not Participant.objects.filter(source="lab").exists()
    page.fill("#id_code", "P-017")
    page.click("text=Begin")
    page.wait_for_selector("#hit-tutorial-done")
    page.click("#hit-tutorial-done")
    do_task(page, study, shots, 1)
    do_task(page, study, shots, 2)
    page.wait_for_selector("text=Last questions")
    answer_questions(page, text="clear enough")
    page.click("#hit-submit")
    page.wait_for_selector("#hit-completion-code")
    shots("done")

    assignment = Assignment.objects.get(participant__source="lab", participant__external_id="P-017")
    assert assignment.status == "submitted"
    assert assignment.mturk_assignment_id in ("", None)
    code = page.locator("#hit-completion-code").inner_text()
    assert len(code) == 10
    assert code == assignment.completion_code
    for task in assignment.tasks.all():
        assert task.end_reason == "target_reached"
    # The same browser comes back to its completion code, not to a new session.
    page.goto(f"{live_server.url}/lab/{study.slug}/")
    page.wait_for_selector("#hit-completion-code")
    assert page.locator("#hit-completion-code").inner_text() == code
    assert Assignment.objects.filter(study=study, participant__source="lab").count() == 1
