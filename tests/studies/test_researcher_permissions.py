"""Researchers see and control only their own studies, and only as far as their permissions
go: each test is an access that any staff account had before studies had owners and the API
checked model permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from studyplatform.studies.models import Event, Study
from studyplatform.studies.services.assignments import assignment_start

pytestmark = pytest.mark.django_db

EVERYTHING = ["view_study", "add_study", "change_study", "go_live_study", "publish_study"]


def researcher(name: str, perms: list[str]) -> Client:
    user = User.objects.create_user(name, password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.fixture
def owned(demo_study):
    """The demo study, owned by alice, with one lab participant's event."""
    alice = researcher("alice", EVERYTHING)
    Study.objects.filter(pk=demo_study.pk).update(owner=User.objects.get(username="alice"))
    assignment = assignment_start(study=demo_study, source="lab", external_id="WORKERX1")
    Event.objects.create(assignment=assignment, type="page_view", client_event_id="e1")
    return demo_study, alice


def test_another_researcher_neither_sees_nor_changes_the_study(owned):
    study, alice = owned
    bob = researcher("bob", EVERYTHING)

    listed = bob.get("/api/studies/").json()
    reads = [bob.get(f"/api/studies/{study.slug}/{p}").status_code for p in ("", "events/")]
    closed = bob.post(f"/api/studies/{study.slug}/status/", {"status": "closed"})
    admin = bob.get("/admin/studies/study/")
    admin_events = bob.get("/admin/studies/event/")

    assert listed["count"] == 0
    assert reads == [404, 404]
    assert closed.status_code == 404
    assert study.slug not in admin.content.decode()
    assert "e1" not in admin_events.content.decode()
    assert Study.objects.get().status == "live"
    assert alice.get("/api/studies/").json()["count"] == 1


def test_a_collaborator_sees_the_study(owned):
    study, _ = owned
    carol = researcher("carol", EVERYTHING)
    study.collaborators.add(User.objects.get(username="carol"))

    assert carol.get(f"/api/studies/{study.slug}/").status_code == 200


def test_a_view_only_researcher_can_neither_go_live_nor_publish(owned):
    study, _ = owned
    viewer = researcher("viewer", ["view_study"])
    study.collaborators.add(User.objects.get(username="viewer"))

    seen = viewer.get(f"/api/studies/{study.slug}/")
    closed = viewer.post(f"/api/studies/{study.slug}/status/", {"status": "closed"})
    created = viewer.post("/api/studies/", {"yaml": "slug: x"}, content_type="application/json")
    page = viewer.get("/admin/studies/study/").content.decode()
    action = viewer.post(
        "/admin/studies/study/", {"action": "make_closed", "_selected_action": [study.pk]}
    )

    assert seen.status_code == 200
    assert (closed.status_code, created.status_code) == (403, 403)
    assert "publish_to_mturk" not in page
    assert "make_live" not in page
    assert action.status_code in (200, 302)
    assert Study.objects.get().status == "live"


def test_going_live_needs_its_own_permission(owned):
    study, _ = owned
    editor = researcher("editor", ["view_study", "change_study"])
    study.collaborators.add(User.objects.get(username="editor"))

    closed = editor.post(f"/api/studies/{study.slug}/status/", {"status": "closed"})

    assert closed.status_code == 403
    assert "go_live_study" in closed.json()["detail"]
    assert Study.objects.get().status == "live"


def test_staff_without_model_permissions_are_refused(owned):
    study, _ = owned
    nobody = researcher("nobody", [])
    study.collaborators.add(User.objects.get(username="nobody"))

    assert nobody.get("/api/studies/").status_code == 403
    assert nobody.get(f"/api/studies/{study.slug}/events/").status_code == 403


def test_exports_show_raw_worker_ids_only_to_those_allowed(owned):
    study, alice = owned

    hidden = alice.get(f"/api/studies/{study.slug}/events/").json()["results"][0]["participant"]
    User.objects.get(username="alice").user_permissions.add(
        Permission.objects.get(codename="view_worker_ids")
    )
    shown = alice.get(f"/api/studies/{study.slug}/events/").json()["results"][0]["participant"]

    assert hidden.startswith("p-")
    assert "WORKERX1" not in hidden
    assert shown == "WORKERX1"


def test_a_study_created_through_the_api_is_owned_by_its_creator(demo_feature_set, demo_spec):
    import yaml

    alice = researcher("alice", EVERYTHING)
    spec = dict(demo_spec, slug="alices")

    created = alice.post(
        "/api/studies/", {"yaml": yaml.safe_dump(spec)}, content_type="application/json"
    )

    assert created.status_code == 201, created.content
    assert Study.objects.get(slug="alices").owner.username == "alice"
    assert researcher("bob", EVERYTHING).get("/api/studies/alices/").status_code == 404
