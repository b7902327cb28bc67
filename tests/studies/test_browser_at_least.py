"""A worker in Chromium under ``stop: at_least`` (seed 001: "find at least 12"): past the
target, a 13th relevant image, then "Finish this task" by choice; nP = 13 in the per-task table.
The with-XAI task shows real SBSM overlays (the precompute service) and the colour bar.

Screenshots go to the test's ``tmp_path`` (``screens/``).
"""

from __future__ import annotations

import pytest

from analysis.selectors import study_task_table
from explain.services import saliency_precompute_study
from retrieval.models import Annotation
from studyplatform.studies.models import Assignment, SearchTask
from studyplatform.studies.services.studies import study_create_from_spec, study_status_set

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TARGET = 12


@pytest.fixture(autouse=True)
def _database_beside_playwright(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def study(demo_feature_set, demo_spec, live_server):
    # book and fork: about 30 images each in the 120-image archive, so 13 can be found
    spec = {
        **demo_spec,
        "slug": "at-least",
        "stop": "at_least",
        "sizes": {
            "target_count": TARGET,
            "iqr_rounds": 2,
            "results_per_round": 30,
            "candidate_pool_size": 60,
        },
        "queries": {"classes": ["book", "fork"], "per_class": 1},
    }
    study = study_create_from_spec(spec=spec)
    study_status_set(study=study, status="ready")
    study = study_status_set(study=study, status="live")
    saliency_precompute_study(study=study, sync=True)
    return study


def answer_questions(page) -> None:
    for fieldset in page.locator("#hit-questions fieldset").all():
        radios = fieldset.locator("input[type=radio]")
        if radios.count():
            radios.nth(3).check()
    page.click("#hit-questions button[type=submit]")


def result_ids(page) -> list[int]:
    return page.locator("#hit-results figure").evaluate_all(
        "cards => cards.map(c => Number(c.dataset.image))"
    )


def find(page, holding: set[int], wanted: int) -> None:
    """Mark ``wanted`` images holding the class relevant, refining when a round has none."""
    found = 0
    while found < wanted:
        image = next((i for i in result_ids(page) if i in holding), None)
        if image is None:
            page.click("#hit-refine")
            page.wait_for_function(
                "n => !document.querySelector('#hit-refine') || "
                "document.querySelector('.hit-round').textContent.includes('refines left: ' + n)",
                arg=str(int(page.locator(".hit-round").inner_text()[-1]) - 1),
            )
            continue
        page.locator(f"#hit-results figure[data-image='{image}'] .hit-yes").click()
        found += 1
        page.wait_for_selector(f"text=Found: {found} of at least {TARGET}")


def test_a_worker_marks_a_13th_image_and_finishes_by_choice(
    browser_page, live_server, study, tmp_path
):
    page = browser_page
    (tmp_path / "screens").mkdir()

    def shot(name: str) -> None:
        page.screenshot(path=str(tmp_path / "screens" / f"{name}.png"), full_page=True)

    page.goto(f"{live_server.url}/lab/{study.slug}/")
    page.fill("#id_code", "P-AT-LEAST")
    page.click("text=Begin")
    page.wait_for_selector("#hit-tutorial-done")
    assert page.locator("#hit-colorbar").is_visible()
    assert "warm" in page.locator("#hit-colorbar").inner_text()
    page.wait_for_function(
        "[...document.images].every(img => img.complete && img.naturalWidth > 0)"
    )
    shot("tutorial")
    page.click("#hit-tutorial-done")
    assignment = Assignment.objects.get(participant__external_id="P-AT-LEAST")

    for position in (1, 2):
        task = SearchTask.objects.select_related("query", "condition").get(
            assignment=assignment, position=position
        )
        page.click("#hit-begin")
        page.wait_for_selector("#hit-results figure")
        header = page.locator(".hit-header h1").inner_text()
        assert f"find at least {TARGET} images" in header
        if task.condition.is_xai:
            overlay = page.locator("#hit-results img[src*='overlay=']").first
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=overlay.element_handle()
            )
            bar = page.locator("#hit-colorbar .hit-colorbar-strip")
            assert bar.is_visible()
            assert "linear-gradient" in bar.evaluate("s => getComputedStyle(s).backgroundImage")
            shot(f"task{position}-with-xai")
        else:
            assert page.locator("#hit-colorbar").count() == 0
        if position == 1:
            holding = set(
                Annotation.objects.filter(category_id=task.query.category_id).values_list(
                    "image_id", flat=True
                )
            )
            find(page, holding, TARGET + 1)
            shot("task1-13-found")
            # past the target the task goes on until the worker chooses to finish
            assert page.locator("#hit-finish").is_visible()
            task.refresh_from_db()
            assert task.ended_at is None
        page.click("#hit-finish")
        page.wait_for_selector("#hit-questions")
        answer_questions(page)

    page.wait_for_selector("text=Last questions")
    answer_questions(page)
    page.click("#hit-submit")
    page.wait_for_selector("#hit-completion-code")

    table = study_task_table(study=study).set_index("position")
    assert table.loc[1, "nP"] == TARGET + 1
    assert table.loc[1, "claimed_positives"] == TARGET + 1
    ends = dict(assignment.tasks.values_list("position", "end_reason"))
    assert ends == {1: "finished", 2: "finished"}
