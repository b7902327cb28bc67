"""The rehearsal's harness end to end on a small scale: the crowd's driver against a served
platform over HTTP (Django's live server), each worker from a loopback address of its own, the
local MTurk endpoint losing the answers of an approval and a bonus and failing a grant, then the finish (outbox, sync, approve, bonus twice, analysis) and every
invariant of the report."""

from __future__ import annotations

import json
import urllib.request

import pytest

from analysis.simulation.driver import Crowd
from studyplatform.rehearsal.stages import rehearsal_finish, rehearsal_publish
from studyplatform.studies.models import Assignment, Event
from tests.mturk.conftest import aws_env, local_mturk  # noqa: F401 (fixtures)
from tests.studies import conftest as demo

_demo_features = demo._demo_features
demo_feature_set = demo.demo_feature_set
demo_spec = demo.demo_spec
demo_study = demo.demo_study


def _control(url: str, name: str, data: dict) -> None:
    request = urllib.request.Request(f"{url}/_control/{name}", data=json.dumps(data).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_small_crowd_over_http_leaves_every_invariant_true(
    demo_study,
    local_mturk,  # noqa: F811
    live_server,
    settings,
    tmp_path,
):
    settings.PUBLIC_BASE_URL = live_server.url
    settings.HIT_EXTRA_SUBMIT_ORIGINS = [local_mturk.url]
    _control(local_mturk.url, "balance", {"amount": "1000.00"})
    published = rehearsal_publish(study_slug=demo_study.slug, mturk_url=local_mturk.url)
    plan = {
        **published, "base_url": live_server.url, "study": demo_study.slug,
        "mturk_url": local_mturk.url, "workers": 3, "burst": 3, "burst_seconds": 0.5,
        "steady_gap": 0.0, "think_scale": 0.0, "seed": 4, "max_seconds": 240,
        "retry_seconds": 20, "behind_proxy": False,
    }  # fmt: skip

    drive = Crowd(json.loads(json.dumps(plan))).run()

    records = drive["records"]
    assert [r.get("error") for r in records] == [None, None, None]
    assert all(r["submitted_to_mturk"] for r in records)
    assert sum(len(r["acknowledged"]) for r in records) > 3 * 12
    assert not drive["traffic"]["failures"]
    # The answers of one approval and one bonus are lost on the way back.
    _control(local_mturk.url, "faults", {"operation": "ApproveAssignment", "kind": "drop"})
    _control(local_mturk.url, "faults", {"operation": "SendBonus", "kind": "drop"})
    # MTurk fails one "participated" grant: the finish syncs again until every worker holds it.
    _control(
        local_mturk.url,
        "faults",
        {"operation": "AssociateQualificationWithWorker", "kind": "fault", "count": 1},
    )
    drive["initial_balance"] = "1000.00"

    finish = rehearsal_finish(
        study_slug=demo_study.slug, mturk_url=local_mturk.url,
        mturk_state=tmp_path / "mturk.sqlite3", drive=drive, outbox_timeout=30,
    )  # fmt: skip

    failed = {name: c["detail"] for name, c in finish["checks"].items() if not c["ok"]}
    assert failed == {}
    assert Assignment.objects.filter(study=demo_study, status="approved").count() == 3
    assert len(local_mturk.store.bonuses()) == 3
    assert Event.objects.filter(assignment__study=demo_study).count() >= sum(
        len(r["acknowledged"]) for r in records
    )
