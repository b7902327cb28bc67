"""The ``mturk`` block of the study spec: the HIT settings, checked as MTurk would check them.

The studies core knows nothing of it: :class:`~mturk.apps.MturkConfig` registers
:class:`MTurkSpec` as the spec's ``mturk`` block, so a study is refused at creation for any
setting MTurk would refuse at publish, and ``mturk.services.hit_settings`` reads the stored
block through the same model. Amounts are US dollars in whole cents, times in the units their
names say.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from studyplatform.studies.spec_types import (
    Dollars,
    SpecModel,
    Text,
    null_as,
    problem,
    problem_at,
)

__all__ = ["COMPARATORS", "CustomQualification", "MTurkSpec", "Qualifications"]

#: MTurk's ``QualificationRequirement.Comparator`` values.
COMPARATORS = (
    "LessThan",
    "LessThanOrEqualTo",
    "GreaterThan",
    "GreaterThanOrEqualTo",
    "EqualTo",
    "NotEqualTo",
    "Exists",
    "DoesNotExist",
    "In",
    "NotIn",
)
#: MTurk pays a submitted assignment by itself after its auto-approval delay: the platform
#: needs that long to sync, compare and let a person reject what it cannot match.
MIN_AUTO_APPROVAL_HOURS = 24
#: What the sync does with a submission it cannot pay (see ``MTurkSpec.incomplete_submissions``).
INCOMPLETE_SUBMISSION_RULES = ("hold", "reject")
#: MTurk accepts at most this many ``IntegerValues`` with ``In`` / ``NotIn``, one otherwise.
MAX_SET_VALUES = 15
#: MTurk's limit on the HIT's comma-separated keywords.
MAX_KEYWORDS_LENGTH = 1000

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_TYPE_ID = re.compile(r"^[A-Z0-9]{1,64}$")


def _country(value: str) -> str:
    if not _COUNTRY.match(value):
        raise problem(f"must be an ISO 3166 country code such as US, got {value!r}")
    return value


def _type_id(value: str) -> str:
    if not _TYPE_ID.match(value):
        raise problem(f"must be 1-64 of A-Z, 0-9, got {value!r}")
    return value


def _split_keywords(value: Any) -> Any:
    if isinstance(value, str):
        return [k.strip() for k in value.split(",") if k.strip()]
    return [] if value is None else value


class CustomQualification(SpecModel):
    """A qualification requirement of the researcher's own, as MTurk's
    ``QualificationRequirement`` (``ActionsGuarded: Accept``)."""

    qualification_type_id: Annotated[
        str,
        Field(
            description="The qualification type's id.",
            json_schema_extra={"pattern": _TYPE_ID.pattern},
        ),
        AfterValidator(_type_id),
    ]
    comparator: Literal[COMPARATORS] = Field(  # type: ignore[valid-type]
        "Exists", description="How the worker's value is compared."
    )
    integer_values: list[int] = Field(
        [],
        description=(
            "None for Exists / DoesNotExist; up to 15 for In / NotIn; exactly one otherwise."
        ),
    )

    @model_validator(mode="after")
    def _values_fit_the_comparator(self) -> CustomQualification:
        n, comparator = len(self.integer_values), self.comparator
        if comparator in ("Exists", "DoesNotExist"):
            wrong = f"{comparator} takes no values, got {n}" if n else ""
        elif comparator in ("In", "NotIn"):
            wrong = (
                ""
                if 1 <= n <= MAX_SET_VALUES
                else (f"{comparator} needs 1 to {MAX_SET_VALUES} values, got {n}")
            )
        else:
            wrong = "" if n == 1 else f"{comparator} needs exactly one value, got {n}"
        if wrong:
            raise problem_at("integer_values", message=wrong)
        return self


class Qualifications(SpecModel):
    """Who may take the HIT: seed 001 section 4's filters, Masters, custom requirements and
    the repeat-worker blocks."""

    locales: list[
        Annotated[
            str, Field(json_schema_extra={"pattern": _COUNTRY.pattern}), AfterValidator(_country)
        ]
    ] = Field([], description="Countries the worker must be in (ISO 3166: US, CA).")
    approved_hits_at_least: Annotated[int, Field(ge=0, le=10**9)] | None = Field(
        None, description="Least number of approved HITs (seed 001: 1000)."
    )
    approval_rate_above: Annotated[int, Field(ge=0, le=99)] | None = Field(
        None, description="Approval rate, in percent, the worker must exceed (seed 001: 97)."
    )
    exclude_participated: bool = Field(
        True, description="Keep out workers who took part in this study before."
    )
    exclude_participated_any_study: bool = Field(
        False, description="Keep out workers who took part in any study of this platform."
    )
    masters: bool = Field(False, description="Only MTurk Masters.")
    custom: list[CustomQualification] = Field(
        [], description="Further requirements of your own qualification types."
    )

    @field_validator("custom")
    @classmethod
    def _custom_types_once(cls, items: list[CustomQualification]) -> list[CustomQualification]:
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            if item.qualification_type_id in seen:
                raise problem_at(
                    i,
                    "qualification_type_id",
                    message=f"{item.qualification_type_id!r} is already "
                    f"custom[{seen[item.qualification_type_id]}]",
                )
            seen[item.qualification_type_id] = i
        return items


class MTurkSpec(SpecModel):
    """The HIT settings of a study published on MTurk; a lab-only study leaves the block out."""

    title: Text(128, required=True) = Field(description="The HIT's title in the workers' list.")
    description: Text(2000) = Field("", description="The HIT's description (default: the title).")
    keywords: Annotated[
        list[Text(200, required=True)],
        BeforeValidator(_split_keywords),
        Field(description="Search keywords, a list or one comma-separated string."),
    ] = Field([])
    reward: Dollars = Field(description='Pay per assignment in US dollars ("2.50"), > 0.00.')
    planned_bonus: Dollars = Field(
        Decimal("0.00"),
        description="Bonus planned per assignment, in dollars, for the cost estimate.",
    )
    production: bool = Field(
        False, description="Publish on the real marketplace (real money); false: the sandbox."
    )
    lifetime_hours: int = Field(72, ge=1, le=24 * 365, description="How long the HIT is listed.")
    assignment_duration_minutes: int = Field(
        60, ge=1, le=24 * 60 * 365, description="How long a worker may hold an assignment."
    )
    auto_approval_delay_hours: int = Field(
        72,
        ge=MIN_AUTO_APPROVAL_HOURS,
        le=24 * 30,
        description=(
            "After this, MTurk approves (pays) a submitted assignment by itself; at least "
            f"{MIN_AUTO_APPROVAL_HOURS}, the time the platform has to sync, compare and reject "
            "what it cannot match."
        ),
    )
    incomplete_submissions: Literal[INCOMPLETE_SUBMISSION_RULES] = Field(  # type: ignore[valid-type]
        "hold",
        description=(
            "What the sync does with a submission the platform cannot pay (no data here, "
            "incomplete data, or another worker or HIT than the platform recorded): hold, "
            "listed for a person to decide before the auto-approval delay ends, or reject."
        ),
    )
    frame_height: int = Field(
        900, ge=0, le=10_000, description="Pixels of the ExternalQuestion frame (0: MTurk's)."
    )
    qualifications: Annotated[Qualifications, null_as({})] = Field(
        Qualifications(), description="Who may take the HIT."
    )

    @field_validator("keywords")
    @classmethod
    def _keywords_fit(cls, keywords: list[str]) -> list[str]:
        if len(", ".join(keywords)) > MAX_KEYWORDS_LENGTH:
            raise problem(f"are longer than {MAX_KEYWORDS_LENGTH} characters together")
        return keywords

    @field_validator("reward")
    @classmethod
    def _reward_paid(cls, reward):
        if reward <= 0:
            raise problem("must be more than 0.00")
        return reward
