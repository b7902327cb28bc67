"""A simulated worker in Chromium on the local endpoint's pages: the HIT list with a
requester's message, a QuestionForm HIT answered inside its frame, and a qualification test.
Screenshots go to the test's ``tmp_path`` (``screens/``)."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config

from tests.mturk.test_local_scenarios import FORM

pytestmark = pytest.mark.browser


@pytest.fixture
def mturk(local_mturk):
    return boto3.client(
        "mturk",
        endpoint_url=local_mturk.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDRESEARCHER",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )


def test_a_worker_answers_a_question_form_hit_in_the_browser(
    local_mturk, mturk, browser_page, tmp_path
):
    screens = tmp_path / "screens"
    screens.mkdir()
    hit = mturk.create_hit(
        Title="Colours of the sky",
        Description="Two short questions.",
        Reward="0.20",
        MaxAssignments=2,
        LifetimeInSeconds=3600,
        AssignmentDurationInSeconds=600,
        Question=FORM,
    )["HIT"]
    local_mturk.worker("AW1")
    page = browser_page
    page.goto(f"{local_mturk.url}/worker/AW1/")
    page.click("a.hit")
    frame = page.frame_locator("#question")
    assert frame.locator("#submit").is_disabled()  # preview: nothing can be submitted
    page.screenshot(path=screens / "preview.png", full_page=True)
    page.click("#accept")
    frame = page.frame_locator("#question")
    frame.locator("input[name=colour][value=blue]").check()
    frame.locator("textarea[name=why]").fill("Rayleigh scattering")
    page.screenshot(path=screens / "answering.png", full_page=True)
    frame.locator("#submit").click()
    frame.locator("#submitted").wait_for()
    [listed] = mturk.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]
    assert listed["WorkerId"] == "AW1"
    assert "<FreeText>blue</FreeText>" in listed["Answer"]
    assert "<FreeText>Rayleigh scattering</FreeText>" in listed["Answer"]
    mturk.approve_assignment(AssignmentId=listed["AssignmentId"], RequesterFeedback="Clear.")
    mturk.send_bonus(
        WorkerId="AW1", AssignmentId=listed["AssignmentId"], BonusAmount="0.50", Reason="Thanks"
    )
    mturk.notify_workers(
        Subject="Thank you", MessageText="A bonus follows on Monday.", WorkerIds=["AW1"]
    )
    page.goto(f"{local_mturk.url}/worker/AW1/")
    assert page.locator("#messages li").inner_text() == "Thank you: A bonus follows on Monday."
    row = page.locator("#work tr").nth(1)
    assert row.locator("td").all_inner_texts() == [
        "Colours of the sky",
        "$0.20",
        "Approved",
        "Clear.",
        "0.50",
    ]
    page.screenshot(path=screens / "messages.png", full_page=True)


def test_a_worker_takes_a_qualification_test_in_the_browser(
    local_mturk, mturk, browser_page, tmp_path
):
    screens = tmp_path / "screens"
    screens.mkdir()
    type_id = mturk.create_qualification_type(
        Name="Colour test",
        Description="Two questions about colours.",
        QualificationTypeStatus="Active",
        Test=FORM,
        TestDurationInSeconds=600,
    )["QualificationType"]["QualificationTypeId"]
    local_mturk.worker("AW1")
    page = browser_page
    page.goto(f"{local_mturk.url}/worker/AW1/")
    page.click("#qualifications")
    page.click("a.take-test")
    page.locator("input[name=colour][value=green]").check()
    page.screenshot(path=screens / "test.png", full_page=True)
    page.click("#submit")
    assert "pending" in page.locator("#requested").inner_text()
    [request] = mturk.list_qualification_requests(QualificationTypeId=type_id)[
        "QualificationRequests"
    ]
    mturk.reject_qualification_request(
        QualificationRequestId=request["QualificationRequestId"], Reason="The sky is blue."
    )
    page.goto(f"{local_mturk.url}/worker/AW1/qualifications/")
    state = page.locator(f"#q-{type_id} .state").inner_text()
    assert state == "rejected: The sky is blue."
    # the type allows no retries: nothing to press
    assert page.locator(f"#q-{type_id} a.take-test").count() == 0
    assert "no retries" in page.locator(f"#q-{type_id}").inner_text()
    page.screenshot(path=screens / "qualifications.png", full_page=True)


HTML_WITH_SCRIPT = (
    '<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2011-11-11/HTMLQuestion.xsd"><HTMLContent><![CDATA[<!DOCTYPE html><html><body>'
    "<form id='mturk_form' method='post'><p>Is this a cat?</p>"
    "<input type='hidden' name='assignmentId' id='assignmentId'>"
    "<label><input type='radio' name='cat' value='yes'> yes</label>"
    "<button id='send'>Send</button></form><script>"
    "const q = new URLSearchParams(location.search);"
    "document.getElementById('assignmentId').value = q.get('assignmentId');"
    "document.getElementById('mturk_form').action = q.get('turkSubmitTo') + '/mturk/externalSubmit';"
    "</script></body></html>]]></HTMLContent><FrameHeight>300</FrameHeight></HTMLQuestion>"
)


def test_an_html_question_runs_its_own_script_and_submits(
    local_mturk, mturk, browser_page, tmp_path
):
    hit_id = mturk.create_hit(
        Title="Cat or not",
        Description="One click.",
        Reward="0.05",
        LifetimeInSeconds=3600,
        AssignmentDurationInSeconds=600,
        Question=HTML_WITH_SCRIPT,
    )["HIT"]["HITId"]
    local_mturk.worker("AW1")
    page = browser_page
    page.goto(f"{local_mturk.url}/worker/AW1/hits/{hit_id}/")
    page.click("#accept")
    frame = page.frame_locator("#question")
    frame.locator("input[name=cat]").check()
    page.screenshot(path=tmp_path / "html-question.png", full_page=True)
    frame.locator("#send").click()
    frame.locator("#submitted").wait_for()
    [listed] = mturk.list_assignments_for_hit(HITId=hit_id)["Assignments"]
    assert (
        "<QuestionIdentifier>cat</QuestionIdentifier><FreeText>yes</FreeText>" in listed["Answer"]
    )


def test_framed_content_cannot_drive_the_control_api(local_mturk, mturk, browser_page):
    script = (
        "<script>fetch('/_control/balance', {method: 'POST', body: '{\"amount\": \"1.00\"}'})"
        ".then(r => document.title = 'status ' + r.status)"
        ".catch(() => document.title = 'blocked');</script>"
    )
    question = HTML_WITH_SCRIPT.replace("</body>", script + "</body>")
    hit_id = mturk.create_hit(
        Title="Greedy",
        Description="Tries to change the balance.",
        Reward="0.05",
        LifetimeInSeconds=3600,
        AssignmentDurationInSeconds=600,
        Question=question,
    )["HIT"]["HITId"]
    local_mturk.worker("AW1")
    browser_page.goto(f"{local_mturk.url}/worker/AW1/hits/{hit_id}/")
    frame = browser_page.frame(url=lambda url: "/worker/content/" in url)
    frame.wait_for_function("document.title.length > 0")
    assert mturk.get_account_balance()["AvailableBalance"] == "10000.00"
