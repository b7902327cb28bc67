"""The researcher API of studies and the admin: create from a spec, read, change status,
task pairs, progress; errors name the field; staff only."""

from __future__ import annotations

import pytest

from studyplatform.studies.models import Study
from studyplatform.studies.services.assignments import assignment_start
from studyplatform.studies.services.specs import study_spec_load

from .conftest import DEMO_SPEC

pytestmark = pytest.mark.django_db


def test_a_study_is_created_from_a_yaml_spec_and_read_back(admin_client, demo_feature_set):
    text = DEMO_SPEC.read_text().replace("archive: synthetic-demo", "archive: synth")

    created = admin_client.post("/api/studies/", {"yaml": text}, content_type="application/json")
    detail = admin_client.get("/api/studies/demo/")
    spec = admin_client.get("/api/studies/demo/spec/").json()

    assert created.status_code == 201, created.content
    assert created.json()["n_task_pairs"] == 12
    assert detail.json()["status"] == "draft"
    assert (detail.json()["n_conditions"], detail.json()["n_queries"]) == (2, 12)
    assert study_spec_load(spec["yaml"]) == spec["spec"] == Study.objects.get().spec


def test_a_bad_spec_is_a_400_naming_the_field_and_nothing_is_created(
    admin_client, demo_feature_set, demo_spec
):
    demo_spec["sizes"]["target_count"] = 0

    response = admin_client.post(
        "/api/studies/", {"spec": demo_spec}, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["field"] == "sizes.target_count"
    assert not Study.objects.exists()


def test_spec_and_yaml_together_are_refused(admin_client, demo_feature_set, demo_spec):
    response = admin_client.post(
        "/api/studies/", {"spec": demo_spec, "yaml": "x: 1"}, content_type="application/json"
    )

    assert response.status_code == 400
    assert not Study.objects.exists()


def test_status_changes_follow_the_allowed_transitions(admin_client, demo_feature_set, demo_spec):
    admin_client.post("/api/studies/", {"spec": demo_spec}, content_type="application/json")

    skipped = admin_client.post(
        "/api/studies/demo/status/", {"status": "live"}, content_type="application/json"
    )
    ready = admin_client.post(
        "/api/studies/demo/status/", {"status": "ready"}, content_type="application/json"
    )

    assert skipped.status_code == 409
    assert "cannot go from draft to live" in skipped.json()["detail"]
    assert ready.status_code == 200
    assert Study.objects.get().status == "ready"


def test_task_pairs_are_listed_and_regeneration_is_refused_once_in_use(admin_client, demo_study):
    pairs = admin_client.get("/api/studies/demo/task-pairs/", {"limit": 100}).json()
    assignment_start(study=demo_study, source="lab", external_id="P1")

    again = admin_client.post("/api/studies/demo/task-pairs/", {}, content_type="application/json")
    other = admin_client.post(
        "/api/studies/demo/task-pairs/", {"seed": 123}, content_type="application/json"
    )

    assert pairs["count"] == 12
    assert all(p["class_a"] != p["class_b"] for p in pairs["results"])
    assert {(p["condition_a"], p["condition_b"]) for p in pairs["results"]} == {("no-xai", "sbsm")}
    assert again.status_code == 200
    assert again.json()["changed"] is False
    assert again.json()["balanced"] is True
    assert other.status_code == 409


def test_progress_counts_assignments_per_status_and_cell(admin_client, demo_study):
    first = assignment_start(study=demo_study, source="lab", external_id="P1")
    assignment_start(study=demo_study, source="lab", external_id="P2")

    progress = admin_client.get("/api/studies/demo/progress/").json()

    assert progress["by_status"] == {"active": 2}
    assert progress["needed"] == 12 * 2  # 12 pairs, 2 workers each
    assert progress["holding"] == 2
    assert progress["per_order"] == {"ab": 1, "ba": 1} or sum(progress["per_order"].values()) == 2
    cell = next(
        c
        for c in progress["cells"]
        if c["pair_id"] == first.task_pair_id and c["order"] == first.order
    )
    assert cell["holders"] == 1


def test_the_api_is_for_staff_only(client, demo_study):
    assert client.get("/api/studies/").status_code in (401, 403)
    assert client.post("/api/studies/demo/status/", {"status": "closed"}).status_code in (401, 403)
    assert Study.objects.get().status == "live"


def test_unknown_studies_are_404(admin_client, db):
    assert admin_client.get("/api/studies/nope/").status_code == 404
    assert admin_client.get("/api/studies/nope/progress/").status_code == 404


def test_the_schema_describes_the_studies_api(admin_client, db):
    schema = admin_client.get("/api/schema/", {"format": "json"})

    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/studies/{slug}/progress/" in paths
    assert "post" in paths["/api/studies/"]


def test_the_admin_lists_studies_with_progress_and_changes_status(admin_client, demo_study):
    assignment_start(study=demo_study, source="lab", external_id="P1")

    page = admin_client.get("/admin/studies/study/")
    closed = admin_client.post(
        "/admin/studies/study/",
        {"action": "make_closed", "_selected_action": [demo_study.pk]},
    )
    detail = admin_client.get(f"/admin/studies/study/{demo_study.pk}/change/")

    assert page.status_code == 200
    assert '<td class="field-progress">1 / 24</td>' in page.content.decode()
    assert closed.status_code == 302
    assert Study.objects.get().status == "closed"
    assert detail.status_code == 200
    assert "sbsm" in detail.content.decode()


def test_the_admin_pages_of_pairs_and_assignments_open(admin_client, demo_study):
    assignment_start(study=demo_study, source="lab", external_id="P1")

    for page in ("taskpair", "assignment", "participant", "questionnaire", "event", "response"):
        assert admin_client.get(f"/admin/studies/{page}/").status_code == 200, page


def test_events_and_responses_are_exported_with_participant_task_and_condition(
    admin_client, demo_study
):
    from studyplatform.studies.models import Event, Question, Response

    assignment = assignment_start(study=demo_study, source="lab", external_id="P1")
    other = assignment_start(study=demo_study, source="lab", external_id="P2")
    task = assignment.tasks.get(position=1)
    Event.objects.create(assignment=assignment, task=task, type="refine", client_event_id="e1")
    Event.objects.create(assignment=assignment, type="page_view", client_event_id="e2")
    Event.objects.create(assignment=other, type="page_view", client_event_id="e1")
    question = Question.objects.get(questionnaire__study=demo_study, code="prefer_with_maps")
    Response.objects.create(assignment=assignment, question=question, value=5)

    everything = admin_client.get("/api/studies/demo/events/").json()
    mine = admin_client.get(
        "/api/studies/demo/events/", {"assignment": assignment.pk, "type": "refine"}
    ).json()
    bad = admin_client.get("/api/studies/demo/events/", {"type": "dance"})
    answers = admin_client.get("/api/studies/demo/responses/").json()

    assert everything["count"] == 3
    assert [
        (e["participant"], e["task_position"], e["condition"], e["type"]) for e in mine["results"]
    ] == [("P1", 1, task.condition.name, "refine")]
    assert bad.status_code == 400
    assert [(a["question"], a["value"], a["questionnaire"]) for a in answers["results"]] == [
        ("prefer_with_maps", 5, "final")
    ]
    assert answers["results"][0]["task_position"] is None
