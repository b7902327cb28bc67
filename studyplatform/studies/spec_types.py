"""The building blocks of the study spec's schema: a strict base model, shared field types and
the translation of pydantic's errors into ``path: problem`` pairs.

Every block of the spec (the studies core's fields, ``mturk``, ``analysis``) is a
:class:`SpecModel`; a field is one annotated attribute, its constraints written with
``Field(...)`` so that the reference in ``docs/study-spec.md`` is generated from them. A rule
that needs several fields raises :func:`problem_at` naming the field it blames. Nothing here
touches Django or the database.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "UNION_TAGS",
    "Dollars",
    "JsonData",
    "Slug",
    "SpecModel",
    "Text",
    "null_as",
    "problem",
    "problem_at",
    "spec_problems",
]

#: Tags of tagged unions (``queries``): pydantic puts them in an error's location, the spec's
#: paths leave them out.
UNION_TAGS: set[str] = set()


class SpecModel(BaseModel):
    """A block of the spec: strict types (``"12"`` is not a number, ``1`` is not ``true``),
    unknown fields refused with the valid ones listed, strings stripped of surrounding space."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        str_strip_whitespace=True,
        frozen=True,
        validate_default=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, BaseModel):
            return data
        if not isinstance(data, Mapping):
            raise problem(f"must be a mapping, got {_kind(data)}")
        valid = sorted(f.alias or name for name, f in cls.model_fields.items())
        unknown = sorted(str(k) for k in data if k not in valid)
        if unknown:
            raise problem(f"unknown field(s) {unknown}; valid: {valid}")
        return data


def problem(message: str) -> PydanticCustomError:
    """An error of the field being validated, in our words; raise it from a validator."""
    return PydanticCustomError("spec", "{message}", {"message": message})


def problem_at(*at: str | int, message: str) -> PydanticCustomError:
    """An error for a rule across fields, blaming the field ``at`` below the validated model
    (``problem_at(2, "name", message=...)`` in a list validator names ``conditions[2].name``)."""
    return PydanticCustomError("spec_at", "{message}", {"message": message, "at": at})


def null_as(empty: Any) -> Any:
    """``null`` (a YAML key left blank) reads as ``empty``: ``Annotated[Sizes, null_as({})]``."""
    return BeforeValidator(lambda value: empty if value is None else value)


def _none_to_empty(value: Any) -> Any:
    return "" if value is None else value


def Text(max_length: int, *, required: bool = False) -> Any:
    """A string of at most ``max_length`` characters; ``null`` reads as ``""`` unless
    ``required`` (then it must not be empty). Give the default with the field: ``= ""``."""
    if required:
        return Annotated[str, Field(min_length=1, max_length=max_length)]
    return Annotated[str, BeforeValidator(_none_to_empty), Field(max_length=max_length)]


_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


def _slug_check(value: str) -> str:
    if not _SLUG.match(value):
        raise problem(f"must hold only letters, digits, '-' and '_', got {value!r}")
    return value


def Slug(max_length: int) -> Any:
    """A non-empty name of letters, digits, ``-`` and ``_`` (a Django slug)."""
    return Annotated[
        str,
        Field(
            min_length=1,
            max_length=max_length,
            json_schema_extra={"pattern": _SLUG.pattern},
        ),
        AfterValidator(_slug_check),
    ]


_AMOUNT = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")


def dollars_parse(value: Any) -> Decimal:
    """A dollar amount in whole cents: ``"2.50"``, ``2.5`` or ``2`` (no exponent, no sign, at
    most two decimals). Raises ValueError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, str | int | float | Decimal)
        or not _AMOUNT.match(str(value).strip())
    ):
        raise ValueError(f"{value!r} is not an amount in dollars with at most two decimals")
    return Decimal(str(value).strip()).quantize(Decimal("0.01"))


def _dollars(value: Any) -> Decimal:
    try:
        return dollars_parse(value)
    except ValueError as exc:
        raise problem(str(exc)) from None


#: US dollars in whole cents; read from a string or a number, written as ``"2.50"``.
Dollars = Annotated[
    Decimal,
    BeforeValidator(_dollars),
    PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str),
    WithJsonSchema({"type": "string", "pattern": _AMOUNT.pattern, "examples": ["2.50"]}),
]


def _json_data(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise problem(f"must be plain data (JSON-able): {exc}") from None


#: A mapping of plain data (what JSON can hold), kept as given.
JsonData = Annotated[dict[str, Any], AfterValidator(_json_data)]


def _kind(value: Any) -> str:
    return {"dict": "mapping", "NoneType": "null"}.get(type(value).__name__, type(value).__name__)


def _message(error: dict) -> str:
    """Our wording of one pydantic error (``ErrorDetails``)."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in ("spec", "spec_at"):
        return error["msg"]
    if kind == "missing":
        return "is required"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer, got {value!r}"
    if kind == "bool_type":
        return f"must be true or false, got {value!r}"
    if kind == "string_type":
        return f"must be a string, got {_kind(value)}"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list, got {_kind(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping, got {_kind(value)}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}, got {value!r}"
    if kind == "greater_than_equal":
        return f"must be >= {ctx['ge']}, got {value!r}"
    if kind == "less_than_equal":
        return f"must be <= {ctx['le']}, got {value!r}"
    if kind == "greater_than":
        return f"must be > {ctx['gt']}, got {value!r}"
    if kind == "less_than":
        return f"must be < {ctx['lt']}, got {value!r}"
    if kind == "string_too_short":
        return "must not be empty" if ctx["min_length"] == 1 else error["msg"]
    if kind == "string_too_long":
        return f"is longer than {ctx['max_length']} characters"
    if kind == "too_short":
        return f"needs at least {ctx['min_length']} item(s), got {ctx['actual_length']}"
    if kind == "too_long":
        return f"holds at most {ctx['max_length']} item(s), got {ctx['actual_length']}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return error["msg"][:1].lower() + error["msg"][1:]


def _path(loc: tuple, prefix: str) -> str:
    path = prefix
    for key in loc:
        if isinstance(key, int):
            path += f"[{key}]"
        elif key not in UNION_TAGS:
            path = f"{path}.{key}" if path else str(key)
    return path


def spec_problems(exc: ValidationError, *, prefix: str = "") -> list[tuple[str, str]]:
    """Each error of ``exc`` as ``(path, message)``; ``path`` as the spec writes it
    (``mturk.qualifications.custom[1].comparator``), under ``prefix`` (``"mturk"``)."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if error["type"] == "spec_at":
            loc += tuple(error["ctx"]["at"])
        problems.append((_path(loc, prefix), _message(error)))
    return problems
