"""`manage.py mturk_dry_run`: a launch rehearsed through the local endpoint and the real pages."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mturk.models import AssignmentRecord, Hit
from studyplatform.studies.models import Assignment

pytestmark = pytest.mark.django_db(transaction=True)


def test_dry_run_publishes_has_workers_complete_the_hit_and_prints_the_cost(demo_study, tmp_path):
    out = io.StringIO()
    call_command(
        "mturk_dry_run",
        study=demo_study.slug,
        workers=3,
        seed=1,
        state=tmp_path / "endpoint.sqlite3",
        stdout=out,
    )
    text = out.getvalue()

    hits = Hit.objects.filter(study=demo_study, environment="local")
    assert hits.exists()
    assert all(hit.max_assignments <= 9 for hit in hits)
    # Every worker accepted on the endpoint, did the HIT here, submitted there and was paid.
    assignments = Assignment.objects.filter(study=demo_study)
    assert assignments.count() == 3
    assert set(assignments.values_list("status", flat=True)) == {"approved"}
    assert len(set(assignments.values_list("participant__external_id", flat=True))) == 3
    approved = AssignmentRecord.objects.filter(
        hit__study=demo_study, status=AssignmentRecord.Status.APPROVED
    )
    assert approved.count() == 3
    assert "3 accepted on MTurk" in text
    assert "3 approved" in text
    # Reward 0.50 and MTurk's 20% fee for three approved assignments.
    assert "rewards 1.50" in text
    assert "total 1.80" in text


def test_dry_run_refuses_a_study_that_is_not_live(demo_study, tmp_path):
    demo_study.status = "closed"
    demo_study.save(update_fields=["status"])
    with pytest.raises(CommandError, match="is closed"):
        call_command("mturk_dry_run", study=demo_study.slug, state=tmp_path / "s.sqlite3")


def test_dry_run_refuses_a_study_real_participants_are_taking(demo_study, tmp_path):
    from mturk.models import Hit
    from studyplatform.studies.models import Assignment
    from studyplatform.studies.services.assignments import assignment_start

    assignment_start(study=demo_study, source="mturk", external_id="AREALWORKER1")

    with pytest.raises(CommandError, match="1 assignments of real participants"):
        call_command("mturk_dry_run", study=demo_study.slug, state=tmp_path / "s.sqlite3")

    assert not Hit.objects.exists()
    assert Assignment.objects.count() == 1
