"""Requests that botocore's own parameter validation lets through but MTurk refuses: the local
endpoint refuses them too, with MTurk's error type, and creates nothing.

The client here validates parameters as boto3 does by default, so a ``ClientError`` (rather than
botocore's ``ParamValidationError``) proves the request left the client and the endpoint refused
it.
"""

from __future__ import annotations

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from mturk.local.common import ApiError
from mturk.local.validation import request_validate

EXTERNAL = (
    '<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
    '2006-07-14/ExternalQuestion.xsd"><ExternalURL>{url}</ExternalURL>'
    "<FrameHeight>{height}</FrameHeight></ExternalQuestion>"
)
GOOD = EXTERNAL.format(url="https://example.org/task", height=600)


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


def hit_params(**changes) -> dict:
    params = {
        "Title": "Find images",
        "Description": "Search twice.",
        "Reward": "0.50",
        "AssignmentDurationInSeconds": 600,
        "LifetimeInSeconds": 3600,
        "MaxAssignments": 3,
        "Question": GOOD,
    }
    params.update(changes)
    return params


@pytest.mark.parametrize(
    ("changes", "error_type", "words"),
    [
        ({"MaxAssignments": 0}, "RequestError", "MaxAssignments"),
        ({"MaxAssignments": 1_000_001}, "RequestError", "MaxAssignments"),
        ({"Reward": "abc"}, "ValidationException", "reward"),
        ({"Reward": "1.234"}, "ValidationException", "reward"),
        ({"Reward": "0.00"}, "RequestError", "minimum"),
        ({"LifetimeInSeconds": 10}, "RequestError", "LifetimeInSeconds"),
        ({"AssignmentDurationInSeconds": 29}, "RequestError", "AssignmentDurationInSeconds"),
        ({"AutoApprovalDelayInSeconds": 31 * 24 * 3600}, "RequestError", "AutoApproval"),
        ({"Title": "x" * 129}, "RequestError", "Title"),
        ({"Question": "<ExternalQuestion><ExternalURL>"}, "ParameterValidationError", "XML"),
        ({"Question": "not xml at all"}, "ParameterValidationError", "XML"),
        (
            {"Question": EXTERNAL.format(url="", height=600)},
            "ParameterValidationError",
            "ExternalURL",
        ),
        (
            {"Question": EXTERNAL.format(url="ftp://example.org/", height=600)},
            "ParameterValidationError",
            "http",
        ),
        (
            {"Question": EXTERNAL.format(url="https://example.org/", height="tall")},
            "ParameterValidationError",
            "FrameHeight",
        ),
        (
            {"Question": "<HTMLQuestion><FrameHeight>400</FrameHeight></HTMLQuestion>"},
            "ParameterValidationError",
            "HTMLContent",
        ),
        ({"Question": "<Survey/>"}, "ParameterValidationError", "root element"),
        ({"Question": "<x>" + "a" * 70_000 + "</x>"}, "ParameterValidationError", "65535"),
        ({"Question": None, "HITLayoutId": "LAYOUT1"}, "RequestError", "HITLayout"),
        (
            {
                "QualificationRequirements": [
                    {
                        "QualificationTypeId": "00000000000000000040",
                        "Comparator": "Exists",
                        "IntegerValues": [5],
                    }
                ]
            },
            "RequestError",
            "takes no values",
        ),
        (
            {
                "QualificationRequirements": [
                    {
                        "QualificationTypeId": "00000000000000000071",
                        "Comparator": "EqualTo",
                        "LocaleValues": [{"Country": "USA"}],
                    }
                ]
            },
            "ValidationException",
            "length less than or equal to 2",
        ),
        (
            {
                "QualificationRequirements": [
                    {
                        "QualificationTypeId": "00000000000000000071",
                        "Comparator": "GreaterThan",
                        "LocaleValues": [{"Country": "US"}],
                    }
                ]
            },
            "RequestError",
            "locales compare",
        ),
        (
            {
                "QualificationRequirements": [
                    {"QualificationTypeId": "NOSUCHTYPE", "Comparator": "Exists"}
                ]
            },
            "RequestError",
            "does not exist",
        ),
    ],
)
def test_a_hit_botocore_lets_through_but_mturk_refuses_is_refused_alike(
    mturk, changes, error_type, words
):
    params = {k: v for k, v in hit_params(**changes).items() if v is not None}
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        mturk.create_hit(**params)
    error = caught.value.response["Error"]
    assert error["Code"] == error_type
    assert words in error["Message"]
    assert mturk.list_hits()["NumResults"] == 0


def test_a_validation_message_names_the_member_and_the_constraint(mturk):
    with pytest.raises(mturk.exceptions.ClientError) as caught:
        mturk.get_hit(HITId="lower")
    assert caught.value.response["Error"]["Message"] == (
        "1 validation error detected: Value 'lower' at 'hITId' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: ^[A-Z0-9]+$"
    )


def test_every_broken_member_is_reported_at_once():
    # two missing members, a worker id off its pattern, an amount off its pattern
    with pytest.raises(ApiError, match=r"^4 validation errors detected") as caught:
        request_validate("SendBonus", {"WorkerId": "nobody", "BonusAmount": "x"})
    for member in ("'assignmentId'", "'reason'", "'workerId'", "'bonusAmount'"):
        assert member in str(caught.value)


def test_a_member_of_the_wrong_json_type_is_a_serialization_error():
    with pytest.raises(ApiError, match="lifetimeInSeconds") as caught:
        request_validate("CreateHITWithHITType", {"HITTypeId": "T", "LifetimeInSeconds": "60"})
    assert caught.value.type == "SerializationException"
    assert "lifetimeInSeconds" in caught.value.message


def test_a_qualification_test_must_be_a_question_form(mturk):
    with pytest.raises(mturk.exceptions.ClientError) as caught:
        mturk.create_qualification_type(
            Name="t",
            Description="d",
            QualificationTypeStatus="Active",
            Test=GOOD,
            TestDurationInSeconds=60,
        )
    assert caught.value.response["Error"]["Code"] == "ParameterValidationError"
    assert mturk.list_qualification_types(MustBeRequestable=True)["NumResults"] == 0
