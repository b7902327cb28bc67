"""A simulated worker goes from the endpoint's worker pages into the platform's own HIT page
(the ExternalQuestion frame URL with MTurk's parameters), which starts the assignment and
grants the participation qualification; the submit then reaches MTurk through externalSubmit."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.test import Client

from mturk.models import Hit
from mturk.services import assignment_approve, assignments_sync, hit_publish
from studyplatform.studies.models import Assignment


def frame_src(page: str) -> str:
    return page.split("<iframe id='question' src='", 1)[1].split("'", 1)[0].replace("&amp;", "&")


def test_a_worker_reaches_the_platform_through_the_frame_and_is_paid(
    study, client, local_mturk, settings, django_capture_on_commit_callbacks
):
    settings.HIT_EXTRA_SUBMIT_ORIGINS = [local_mturk.url]
    hit_publish(study=study, client=client, confirm=True)
    first, second = Hit.objects.order_by("batch")[:2]
    local_mturk.worker("AWORKER1", country="CA", approved_count=1500, approval_rate=98)
    status, work = local_mturk.post_form(f"/worker/AWORKER1/hits/{first.hit_id}/accept", {})
    assert status == 200
    src = urlsplit(frame_src(work))
    assert src.netloc == "testserver"
    browser = Client()
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.get(f"{src.path}?{src.query}")
    assert response.status_code == 200
    assignment = Assignment.objects.get(participant__external_id="AWORKER1")
    assert assignment.hit_id == first.hit_id
    assert assignment.turk_submit_to == local_mturk.url
    # The page's start granted the study's participated qualification: no second HIT.
    message = local_mturk.refused("accept", {"worker_id": "AWORKER1", "hit_id": second.hit_id})
    assert "you do not qualify" in message
    # The platform has the data; its final form posts to {turkSubmitTo}/mturk/externalSubmit.
    assignment.status = Assignment.Status.SUBMITTED
    assignment.save()
    status, _ = local_mturk.post_form(
        "/mturk/externalSubmit", {"assignmentId": assignment.mturk_assignment_id}
    )
    assert status == 200
    report = assignments_sync(study=study, client=client)
    assert report.listed == 1
    assert report.submitted_on_mturk_incomplete_here == []
    assignment_approve(mturk_assignment_id=assignment.mturk_assignment_id, client=client)
    assignment.refresh_from_db()
    assert assignment.status == Assignment.Status.APPROVED
