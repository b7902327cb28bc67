"""A simulated worker goes from the endpoint's worker pages into the platform's own HIT page
(the ExternalQuestion frame URL with MTurk's parameters), which starts the assignment; the
submit then reaches MTurk through externalSubmit, and the sync grants the participation
qualification to the worker MTurk lists."""

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
    # The page grants nothing: the worker id in its URL is not verified.
    assert local_mturk.calls("AssociateQualificationWithWorker") == 0
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
    assert report.mismatched == []
    # The sync granted the participated qualification to the worker MTurk listed: no second HIT.
    assert report.granted == ["AWORKER1"]
    message = local_mturk.refused("accept", {"worker_id": "AWORKER1", "hit_id": second.hit_id})
    assert "you do not qualify" in message
    assignment_approve(mturk_assignment_id=assignment.mturk_assignment_id, client=client)
    assignment.refresh_from_db()
    assert assignment.status == Assignment.Status.APPROVED


def test_the_page_opens_while_the_mturk_endpoint_is_down(
    study, client, local_mturk, settings, django_capture_on_commit_callbacks
):
    """Opening a HIT calls nothing on MTurk, so an unreachable endpoint (and no broker: tasks
    run in the request) cannot turn the first open into a server error."""
    from studyplatform.celery import app
    from tests.conftest import free_port

    settings.HIT_EXTRA_SUBMIT_ORIGINS = [local_mturk.url]
    hit_publish(study=study, client=client, confirm=True)
    hit = Hit.objects.order_by("batch").first()
    local_mturk.worker("AWORKER1", country="CA", approved_count=1500, approval_rate=98)
    _status, work = local_mturk.post_form(f"/worker/AWORKER1/hits/{hit.hit_id}/accept", {})
    src = urlsplit(frame_src(work))
    settings.MTURK_LOCAL_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    before = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = Client(raise_request_exception=False).get(f"{src.path}?{src.query}")
    finally:
        app.conf.update(task_always_eager=before[0], task_eager_propagates=before[1])

    assert response.status_code == 200
    assert Assignment.objects.get(participant__external_id="AWORKER1").status == "active"
