"""The HIT settings of a study (``Study.mturk``), checked, and the money arithmetic of a launch.

Nothing here calls MTurk: a bad reward, duration or qualification is reported before the
first request. Amounts are :class:`~decimal.Decimal` US dollars with two decimals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from mturk.client import MTurkError
from mturk.spec import CustomQualification, MTurkSpec
from studyplatform.studies.spec_types import dollars_parse, spec_problems

LOCALE_QUALIFICATION = "00000000000000000071"
APPROVED_COUNT_QUALIFICATION = "00000000000000000040"
APPROVAL_RATE_QUALIFICATION = "000000000000000000L0"
MASTERS_QUALIFICATION = {
    "sandbox": "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6",
    "local": "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6",
    "production": "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH",
}
# MTurk charges 20% commission, 40% on HITs with 10 or more assignments, at least $0.01.
FEE_RATE = Decimal("0.20")
FEE_MINIMUM = Decimal("0.01")
MAX_ASSIGNMENTS_PER_HIT = 9


class MTurkSettingsError(MTurkError):
    """The study's MTurk settings are invalid; ``field`` names the setting."""

    def __init__(self, field_name: str, problem: str) -> None:
        self.field = field_name
        super().__init__(f"mturk.{field_name}: {problem}" if field_name else f"mturk: {problem}")


def amount_parse(value: Any, field_name: str, *, allow_zero: bool = False) -> Decimal:
    """A dollar amount in whole cents (``"2.50"``), read as the spec's amounts are; raises
    :class:`MTurkSettingsError` naming ``field_name``."""
    try:
        amount = dollars_parse(value)
    except ValueError as exc:
        raise MTurkSettingsError(field_name, str(exc)) from None
    if amount == 0 and not allow_zero:
        raise MTurkSettingsError(field_name, "must be more than 0.00")
    return amount


def fee(amount: Decimal) -> Decimal:
    """MTurk's commission on ``amount`` paid on a HIT of fewer than 10 assignments."""
    return max((amount * FEE_RATE).quantize(Decimal("0.01")), FEE_MINIMUM)


def batch_sizes(total: int, *, per_hit: int = MAX_ASSIGNMENTS_PER_HIT) -> list[int]:
    """Split ``total`` assignments into HITs of at most ``per_hit`` (< 10), as even as possible.

    >>> batch_sizes(20)
    [7, 7, 6]
    """
    if total < 1:
        return []
    n_hits = -(-total // per_hit)
    base, extra = divmod(total, n_hits)
    return [base + 1 if i < extra else base for i in range(n_hits)]


@dataclass(frozen=True)
class HitSettings:
    """Checked HIT settings; times in seconds, amounts in dollars."""

    title: str
    description: str
    keywords: str
    reward: Decimal
    lifetime_seconds: int
    assignment_duration_seconds: int
    auto_approval_delay_seconds: int
    frame_height: int
    locales: list[str] = field(default_factory=list)
    approved_hits_at_least: int | None = None
    approval_rate_above: int | None = None
    masters: bool = False
    custom: list[dict] = field(default_factory=list)
    exclude_participated: bool = True
    exclude_participated_any_study: bool = False
    planned_bonus: Decimal = Decimal("0.00")
    production: bool = False
    incomplete_submissions: str = "hold"

    def requirements(self, *, environment: str, participated_ids: list[str]) -> list[dict]:
        """MTurk ``QualificationRequirements``: seed 001 section 4's filters (locale, approved HITs,
        approval rate), Masters, custom ones, and each "participated" type as DoesNotExist."""
        reqs: list[dict] = []
        if self.locales:
            reqs.append(
                {
                    "QualificationTypeId": LOCALE_QUALIFICATION,
                    "Comparator": "In",
                    "LocaleValues": [{"Country": c} for c in self.locales],
                    "ActionsGuarded": "Accept",
                }
            )
        if self.approved_hits_at_least is not None:
            reqs.append(
                {
                    "QualificationTypeId": APPROVED_COUNT_QUALIFICATION,
                    "Comparator": "GreaterThanOrEqualTo",
                    "IntegerValues": [self.approved_hits_at_least],
                    "ActionsGuarded": "Accept",
                }
            )
        if self.approval_rate_above is not None:
            reqs.append(
                {
                    "QualificationTypeId": APPROVAL_RATE_QUALIFICATION,
                    "Comparator": "GreaterThan",
                    "IntegerValues": [self.approval_rate_above],
                    "ActionsGuarded": "Accept",
                }
            )
        if self.masters:
            reqs.append(
                {
                    "QualificationTypeId": MASTERS_QUALIFICATION[environment],
                    "Comparator": "Exists",
                    "ActionsGuarded": "Accept",
                }
            )
        reqs.extend(self.custom)
        for type_id in participated_ids:
            reqs.append(
                {
                    "QualificationTypeId": type_id,
                    "Comparator": "DoesNotExist",
                    "ActionsGuarded": "DiscoverPreviewAndAccept",
                }
            )
        return reqs


def _requirement(item: CustomQualification) -> dict:
    req = {
        "QualificationTypeId": item.qualification_type_id,
        "Comparator": item.comparator,
        "ActionsGuarded": "Accept",
    }
    if item.integer_values:
        req["IntegerValues"] = list(item.integer_values)
    return req


def hit_settings_from_study(study: Any) -> HitSettings:
    """Read ``study.mturk`` (the spec's ``mturk`` block) through :class:`~mturk.spec.MTurkSpec`,
    the model that checked it when the study was created. Raises :class:`MTurkSettingsError`
    naming the field."""
    data = study.mturk or {}
    if not data:
        raise MTurkSettingsError("", f"study {study.slug} has no mturk settings (a lab-only study)")
    try:
        spec = MTurkSpec.model_validate(data)
    except ValidationError as exc:
        path, problem = spec_problems(exc)[0]
        raise MTurkSettingsError(path, problem) from None
    quals = spec.qualifications
    return HitSettings(
        title=spec.title,
        description=spec.description or spec.title,
        keywords=", ".join(spec.keywords),
        reward=spec.reward,
        lifetime_seconds=3600 * spec.lifetime_hours,
        assignment_duration_seconds=60 * spec.assignment_duration_minutes,
        auto_approval_delay_seconds=3600 * spec.auto_approval_delay_hours,
        frame_height=spec.frame_height,
        locales=list(quals.locales),
        approved_hits_at_least=quals.approved_hits_at_least,
        approval_rate_above=quals.approval_rate_above,
        masters=quals.masters,
        custom=[_requirement(item) for item in quals.custom],
        exclude_participated=quals.exclude_participated,
        exclude_participated_any_study=quals.exclude_participated_any_study,
        planned_bonus=spec.planned_bonus,
        production=spec.production,
        incomplete_submissions=spec.incomplete_submissions,
    )


@dataclass(frozen=True)
class CostEstimate:
    """What a launch would cost: ``assignments`` x (reward + fee) + planned bonuses + their
    fees, in dollars."""

    assignments: int
    hits: list[int]
    reward: Decimal
    rewards_total: Decimal
    fees_total: Decimal
    bonuses_total: Decimal
    total: Decimal

    def lines(self) -> list[str]:
        return [
            f"{self.assignments} assignments in {len(self.hits)} HITs "
            f"(sizes {', '.join(map(str, self.hits)) or '-'}; each under 10 for the 20% fee)",
            f"rewards  {self.assignments} x ${self.reward} = ${self.rewards_total}",
            f"fees     ${self.fees_total}",
            f"bonuses  ${self.bonuses_total} (planned, with fees)",
            f"total    ${self.total}",
        ]


def cost_estimate(*, settings: HitSettings, assignments: int) -> CostEstimate:
    per_bonus = (
        settings.planned_bonus + fee(settings.planned_bonus) if settings.planned_bonus else 0
    )
    rewards = settings.reward * assignments
    fees = fee(settings.reward) * assignments
    bonuses = Decimal(per_bonus) * assignments
    return CostEstimate(
        assignments=assignments,
        hits=batch_sizes(assignments),
        reward=settings.reward,
        rewards_total=rewards,
        fees_total=fees,
        bonuses_total=bonuses,
        total=rewards + fees + bonuses,
    )
