"""Fuzzing: the researcher API under its OpenAPI schema (schemathesis, as staff) and the
worker's JSON endpoints with generated bodies; no input may make the platform answer 5xx.

A bounded number of examples per operation here; ``FUZZ_EXAMPLES`` raises it for a longer run.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.simulation.transport import WsgiTransport
from tests.mturk.conftest import study as _mturk_study  # noqa: F401 (a fixture)
from tests.studies import conftest as demo

# The study app's demo-study fixtures (real features: the worker pages search them).
_demo_features = demo._demo_features
demo_feature_set = demo.demo_feature_set
demo_spec = demo.demo_spec
demo_study = demo.demo_study

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))


@pytest.fixture
def study(_mturk_study):  # noqa: F811
    return _mturk_study


@pytest.fixture
def staff_token(db):
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_user("fuzz", is_staff=True, is_superuser=True)
    return Token.objects.create(user=user).key


@pytest.mark.django_db(transaction=True)
def test_no_generated_request_makes_the_api_answer_5xx(staff_token, study):
    auth = {"Authorization": f"Token {staff_token}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", WSGIHandler(), headers=auth)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    answered: dict[str, set[int]] = {}

    def fuzz(operation):
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case):
            response = case.call(headers=auth)
            answered.setdefault(operation.label, set()).add(response.status_code)
            assert response.status_code < 500, (
                case.method,
                case.formatted_path,
                response.text[:500],
            )

        call()

    for operation in operations:
        fuzz(operation)

    assert set(answered) == {operation.label for operation in operations}
    # The generated requests reach the views: some succeed, some are refused as invalid.
    statuses = set().union(*answered.values())
    assert any(200 <= s < 300 for s in statuses)
    assert any(400 <= s < 500 for s in statuses)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
_fields = ["assignment", "task", "type", "image", "round", "id", "time", "payload", "answers"]
_bodies = st.dictionaries(st.sampled_from(_fields), _json, max_size=6)
_endpoints = ["event", "begin", "refine", "finish", "answers", "tutorial", "submit"]


@pytest.mark.django_db(transaction=True)
def test_generated_bodies_never_make_the_worker_endpoints_answer_5xx(demo_study):
    study = demo_study
    page = WsgiTransport(study=study.slug, host="testserver")
    status, _ = page.open_lab("fuzz-participant")
    assert status == 302
    _, state = page.get_json("state")
    assignment = state["state"]["assignment"]
    task_ids = list(study.assignments.get(pk=assignment).tasks.values_list("id", flat=True))
    answers: list[tuple[str, int]] = []

    @settings(max_examples=EXAMPLES * 20, deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(
        endpoint=st.sampled_from(_endpoints),
        body=_bodies,
        own=st.booleans(),
        task=st.sampled_from([*task_ids, None, -1]),
    )
    def post(endpoint, body, own, task):
        if own:  # half the bodies name this browser's assignment and one of its tasks
            body = {**body, "assignment": assignment, "task": task}
        status, _ = page.post_json(endpoint, body)
        answers.append((endpoint, status))
        assert status < 500, (endpoint, body)

    post()
    assert any(status == 200 for _, status in answers)
    assert any(400 <= status < 500 for _, status in answers)
