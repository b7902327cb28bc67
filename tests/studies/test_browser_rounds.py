"""The second round of a with-XAI task in Chromium: images from outside the query's candidate
pool, each with its saliency map computed on demand for this round, as the event log says.

Runs the demo study on pytest-django's live server without a broker (the embedded default):
the refine's round is computed in the web process right after its commit, by the same code a
gpu worker runs. The pool is cut to one round's worth of results, all judged in round 0, so
every result of round 1 comes from the rest of the archive through IQR. Round 0's overlays are
the stand-ins of ``hit_helpers.write_overlays`` (64 px); round 1's are real SBSM overlays in
the backbone's 128 px frame.
"""

from __future__ import annotations

import pytest

from studyplatform.studies.models import Assignment, Event, IQRRound
from studyplatform.studies.selectors.pools import candidate_pool
from tests.studies.hit_helpers import write_overlays
from tests.studies.test_browser_hit import hit_url, occupy

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _database_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def study(demo_study, settings, live_server):
    settings.HIT_EXTRA_SUBMIT_ORIGINS = [live_server.url]
    demo_study.candidate_pool_size = demo_study.results_per_round
    demo_study.save()
    write_overlays(demo_study)
    return demo_study


def test_the_second_round_of_a_with_xai_task_shows_images_outside_the_pool_with_their_maps(
    browser_page, live_server, study, tmp_path
):
    page = browser_page
    occupy(study, "ab")  # the emptiest cells are "ba": the with-XAI task comes first
    page.goto(hit_url(live_server, study, "ASSIGNR1", worker="WORKERR1"))
    page.click("#hit-tutorial-done")
    page.click("#hit-begin")
    page.wait_for_selector("#hit-results figure")
    assignment = Assignment.objects.get(mturk_assignment_id="ASSIGNR1")
    task = assignment.tasks.get(position=1)
    assert task.condition.is_xai
    pool = set(candidate_pool(study=study, query=task.query))
    cards = page.locator("#hit-results figure")
    first = cards.evaluate_all("cards => cards.map(c => Number(c.dataset.image))")
    assert set(first) == pool

    # Judge every result of round 0: one relevant, the rest not.
    cards.first.locator(".hit-yes").click()
    for judged in range(1, len(first)):
        page.locator("#hit-results figure").first.locator(".hit-no").click()
        page.wait_for_function(
            f"document.querySelectorAll('#hit-results figure').length === {len(first) - judged - 1}"
        )
    page.wait_for_function("window.hitDebug.queue().length === 0")
    page.keyboard.press("f")  # refine
    page.wait_for_selector("text=Round 2 of 3")
    page.wait_for_selector("#hit-results figure")
    overlays = page.locator("#hit-results img[src*='overlay=']")
    page.wait_for_function(
        "[...document.querySelectorAll('#hit-results img')].every("
        "img => img.complete && img.naturalWidth > 0)"
    )
    page.screenshot(path=str(tmp_path / "round2.png"), full_page=True)

    second = page.locator("#hit-results figure").evaluate_all(
        "cards => cards.map(c => Number(c.dataset.image))"
    )
    outside = [i for i in second if i not in pool]
    assert outside, "round 2 shows nothing from outside the pool"
    assert overlays.count() == len(second)  # every result drawn with its map
    widths = overlays.evaluate_all("imgs => imgs.map(img => img.naturalWidth)")
    assert set(widths) == {128}  # real SBSM overlays in the backbone's frame, not stand-ins
    round_ = IQRRound.objects.get(task=task, number=1)
    assert round_.ranking == second
    shown = Event.objects.get(task=task, type="shown", iqr_round=1)
    assert set(outside) <= set(shown.payload["maps_on_demand"])
    assert shown.payload["overlays_missing"] == []
    assert shown.payload["round"]["scope"] == "archive"

    # A reload shows the same round.
    page.reload()
    page.wait_for_selector("text=Round 2 of 3")
    again = page.locator("#hit-results figure").evaluate_all(
        "cards => cards.map(c => Number(c.dataset.image))"
    )
    assert again == second


def test_with_the_broker_down_the_page_says_the_round_is_delayed_and_a_retry_shows_it(
    browser_page, live_server, study, tmp_path
):
    from tests.studies.test_rounds import broker

    page = browser_page
    page.goto(hit_url(live_server, study, "ASSIGNR2", worker="WORKERR2"))
    page.click("#hit-tutorial-done")
    page.click("#hit-begin")
    page.wait_for_selector("#hit-results figure")
    page.locator("#hit-results figure").first.locator(".hit-no").click()
    page.wait_for_function("window.hitDebug.queue().length === 0")

    with broker("redis://127.0.0.1:1/0"):  # nothing listens on port 1
        page.keyboard.press("f")
        page.wait_for_selector("#hit-preparing >> text=is delayed")
    page.screenshot(path=str(tmp_path / "delayed.png"), full_page=True)
    assignment = Assignment.objects.get(mturk_assignment_id="ASSIGNR2")
    task = assignment.tasks.get(position=1)
    round_ = IQRRound.objects.get(task=task, number=1)
    assert round_.status == "delayed"
    assert len(round_.negatives) == 1  # the mark is kept with the round
    assert page.locator("#hit-results figure").count() == 0
    assert page.locator("#hit-refine").count() == 0

    # The broker is back (the embedded default): the retry prepares the same round.
    page.click("#hit-retry")
    page.wait_for_selector("text=Round 2 of 3")
    page.wait_for_selector("#hit-results figure")
    round_.refresh_from_db()
    assert round_.status == "ready"
    shown = page.locator("#hit-results figure").evaluate_all(
        "cards => cards.map(c => Number(c.dataset.image))"
    )
    assert shown == round_.ranking
    assert IQRRound.objects.filter(task=task).count() == 2
    assert Event.objects.filter(task=task, type="refine").count() == 1
