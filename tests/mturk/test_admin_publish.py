"""The study admin's "Publish to MTurk" action: the cost first, HITs only once confirmed."""

from __future__ import annotations

import pytest

from mturk.models import Hit


@pytest.fixture
def local_environment(settings, local_mturk):
    settings.MTURK_ENVIRONMENT = "local"
    return local_mturk


def changelist_post(admin_client, study, **extra):
    return admin_client.post(
        "/admin/studies/study/",
        {"action": "publish_to_mturk", "_selected_action": [study.pk], **extra},
    )


def test_publish_action_shows_the_cost_and_balance_and_publishes_nothing(
    admin_client, study, local_environment
):
    response = changelist_post(admin_client, study)

    assert response.status_code == 200
    page = response.content.decode()
    assert "account balance" in page
    assert study.slug in page
    assert 'name="confirm" value="yes"' in page
    assert not Hit.objects.filter(study=study).exists()


def test_publish_action_publishes_once_confirmed_and_not_twice(
    admin_client, study, local_environment
):
    changelist_post(admin_client, study, confirm="yes")
    hits = list(Hit.objects.filter(study=study, environment="local").exclude(hit_id=""))
    assert hits
    assert all(hit.max_assignments <= 9 for hit in hits)

    changelist_post(admin_client, study, confirm="yes")
    assert Hit.objects.filter(study=study).exclude(hit_id="").count() == len(hits)


def test_publish_action_reports_a_configuration_error_without_publishing(
    admin_client, study, settings, aws_env
):
    settings.MTURK_ENVIRONMENT = "production"
    response = changelist_post(admin_client, study, confirm="yes")

    assert response.status_code == 302
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("Production MTurk refused" in m for m in messages)
    assert not Hit.objects.filter(study=study).exists()
