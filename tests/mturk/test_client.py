"""The boto3 client: environments, the production switch, credentials, retries and errors."""

from __future__ import annotations

import pytest

from mturk.client import (
    PRODUCTION_URL,
    SANDBOX_URL,
    MTurkConfigError,
    MTurkServiceError,
    MTurkThrottled,
    MTurkUnreachable,
    client_environment,
    mturk_call,
    mturk_client,
)


def test_sandbox_is_the_default_environment(aws_env, settings):
    settings.MTURK_ENVIRONMENT = "sandbox"
    assert mturk_client().meta.endpoint_url == SANDBOX_URL


def test_missing_credentials_name_the_variables_to_set(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(MTurkConfigError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        mturk_client(environment="sandbox")


def test_production_is_refused_unless_the_study_allows_it(aws_env, monkeypatch):
    monkeypatch.setenv("MTURK_ALLOW_PRODUCTION", "1")
    with pytest.raises(MTurkConfigError, match="study does not allow"):
        mturk_client(environment="production")


def test_production_is_refused_without_the_environment_switch(aws_env, settings):
    settings.MTURK_ALLOW_PRODUCTION = False
    with pytest.raises(MTurkConfigError, match="MTURK_ALLOW_PRODUCTION=1"):
        mturk_client(environment="production", study_allows_production=True)


def test_production_needs_both_switches(aws_env, monkeypatch):
    monkeypatch.setenv("MTURK_ALLOW_PRODUCTION", "1")
    client = mturk_client(environment="production", study_allows_production=True)
    assert client.meta.endpoint_url == PRODUCTION_URL


def test_an_unknown_environment_is_refused(aws_env):
    with pytest.raises(MTurkConfigError, match="Unknown MTurk environment 'prod'"):
        mturk_client(environment="prod")


def test_a_few_throttled_calls_are_retried_by_botocore(local_mturk, client):
    local_mturk.fault("GetAccountBalance", "throttle", count=2)
    assert mturk_call(client, "get_account_balance")["AvailableBalance"] == "10000.00"
    assert local_mturk.calls("GetAccountBalance") == 3


def test_throttling_beyond_the_retry_limit_surfaces_as_our_error(local_mturk, client):
    local_mturk.fault("GetAccountBalance", "throttle", count=10)
    with pytest.raises(MTurkThrottled, match="ThrottlingException"):
        mturk_call(client, "get_account_balance")
    assert local_mturk.calls("GetAccountBalance") == 3  # MTURK_MAX_ATTEMPTS in the fixture


def test_a_service_fault_is_not_retried_and_surfaces_as_our_error(local_mturk, client):
    local_mturk.fault("GetAccountBalance", "fault", count=1)
    with pytest.raises(MTurkServiceError) as caught:
        mturk_call(client, "get_account_balance")
    assert caught.value.code == "ServiceFault"
    assert caught.value.turk_code == "AWS.MechanicalTurk.ServiceFault"
    assert not isinstance(caught.value, MTurkThrottled)
    assert local_mturk.calls("GetAccountBalance") == 1


def test_a_connection_that_keeps_dropping_surfaces_as_unreachable(local_mturk, client):
    local_mturk.fault("GetAccountBalance", "drop", count=10)
    with pytest.raises(MTurkUnreachable):
        mturk_call(client, "get_account_balance")
    assert local_mturk.calls("GetAccountBalance") == 3


@pytest.mark.parametrize(
    "url",
    [
        "https://mturk-requester.us-east-1.amazonaws.com",
        "https://MTURK-REQUESTER.us-east-1.amazonaws.com.:443/",
        "https://mturk-requester-sandbox.us-east-1.amazonaws.com",
        "ftp://127.0.0.1:8765",
    ],
)
def test_a_local_client_cannot_point_at_amazon(aws_env, settings, monkeypatch, url):
    monkeypatch.delenv("MTURK_LOCAL_URL", raising=False)
    settings.MTURK_LOCAL_URL = url
    with pytest.raises(MTurkConfigError, match="MTURK_LOCAL_URL"):
        mturk_client(environment="local")
    with pytest.raises(MTurkConfigError, match="MTURK_LOCAL_URL"):
        mturk_client(environment="local", endpoint_url=url)


def test_a_local_client_reaches_a_local_endpoint(aws_env, settings, monkeypatch):
    monkeypatch.delenv("MTURK_LOCAL_URL", raising=False)
    settings.MTURK_LOCAL_URL = "http://127.0.0.1:8765"
    assert client_environment(mturk_client(environment="local")) == "local"
