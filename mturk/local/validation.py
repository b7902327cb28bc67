"""Requests checked against botocore's own ``mturk`` service model, as AWS's front end checks
them before MTurk sees them.

botocore's client refuses only missing members, wrong Python types and values under a shape's
``min``; AWS also enforces ``max``, ``pattern`` and ``enum``, and any client (curl, another SDK,
boto3 with ``parameter_validation=False``) can send what botocore would have refused. Here every
request goes through the full model:

* a member of the wrong JSON type -> ``SerializationException`` (AWS's JSON 1.1 front end);
* a missing required member, a string or list outside ``min``/``max``, an integer outside its
  range, a string off its ``pattern`` or ``enum`` -> ``ValidationException`` with AWS's
  "N validation error(s) detected: Value ... at '...' failed to satisfy constraint: ..." text.

Rules the model does not hold (``MaxAssignments`` of 0, XML questions, MTurk's own limits) are
the operations' business and answer ``RequestError`` / ``ParameterValidationError`` as MTurk does.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from mturk.local.common import ApiError

_INTEGER_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


@functools.cache
def service_model():
    """botocore's ``mturk`` service model (loaded once; botocore ships it, no network)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("mturk")


def operation_names() -> list[str]:
    return list(service_model().operation_names)


def request_validate(operation: str, params: Any) -> None:
    """Raise :class:`ApiError` unless ``params`` (the decoded JSON body) is a valid input of
    ``operation``; ``UnknownOperationException`` for an operation the model does not have."""
    model = service_model()
    if operation not in model.operation_names:
        raise ApiError(
            f"Operation {operation} is not an operation of {model.metadata['targetPrefix']}.",
            type_="UnknownOperationException",
        )
    shape = model.operation_model(operation).input_shape
    if shape is None:
        return
    errors: list[str] = []
    _check(shape, params, "", errors)
    if errors:
        count = len(errors)
        noun = "error" if count == 1 else "errors"
        raise ApiError(
            f"{count} validation {noun} detected: " + "; ".join(errors),
            type_="ValidationException",
        )


def _path(prefix: str, name: str) -> str:
    # AWS names members lowerCamelCase in these messages: 'maxAssignments', 'hIT...'
    member = name[:1].lower() + name[1:]
    return f"{prefix}.{member}" if prefix else member


def _type_error(path: str, expected: str) -> ApiError:
    return ApiError(
        f"Member '{path or 'request'}' must be {expected}.", type_="SerializationException"
    )


def _check(shape, value: Any, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise _type_error(path, "a JSON object")
        for name in shape.required_members:
            if value.get(name) is None:
                errors.append(
                    f"Value null at '{_path(path, name)}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        for name, member_value in value.items():
            member = shape.members.get(name)
            if member is None or member_value is None:
                continue  # AWS's JSON front end ignores members it does not know
            _check(member, member_value, _path(path, name), errors)
    elif kind == "list":
        if not isinstance(value, list):
            raise _type_error(path, "a JSON array")
        _length(shape, len(value), path, value, errors)
        for index, item in enumerate(value):
            _check(shape.member, item, f"{path}.{index + 1}.member", errors)
    elif kind == "string":
        if not isinstance(value, str):
            raise _type_error(path, "a JSON string")
        _length(shape, len(value), path, value, errors)
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            errors.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(enum)}]"
            )
        pattern = shape.metadata.get("pattern")
        if pattern and not re.search(pattern, value):
            errors.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {pattern}"
            )
    elif kind in _INTEGER_RANGE:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(path, "a JSON integer")
        low, high = _INTEGER_RANGE[kind]
        low = shape.metadata.get("min", low)
        high = shape.metadata.get("max", high)
        if value < low:
            errors.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must have value greater than or equal to {low}"
            )
        elif value > high:
            errors.append(
                f"Value '{value}' at '{path}' failed to satisfy constraint: "
                f"Member must have value less than or equal to {high}"
            )
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise _type_error(path, "a JSON boolean")
    elif kind == "timestamp" and (isinstance(value, bool) or not isinstance(value, int | float)):
        # JSON 1.1 carries timestamps as seconds since the epoch.
        raise _type_error(path, "a number of seconds since the epoch")


def _length(shape, length: int, path: str, value: Any, errors: list[str]) -> None:
    low = shape.metadata.get("min")
    high = shape.metadata.get("max")
    shown = value if isinstance(value, str) else "[...]"
    if low is not None and length < low:
        errors.append(
            f"Value '{shown}' at '{path}' failed to satisfy constraint: "
            f"Member must have length greater than or equal to {low}"
        )
    if high is not None and length > high:
        errors.append(
            f"Value '{shown}' at '{path}' failed to satisfy constraint: "
            f"Member must have length less than or equal to {high}"
        )
