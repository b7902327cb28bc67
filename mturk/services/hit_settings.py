"""The HIT settings of a study (``Study.mturk``), checked, and the money arithmetic of a launch.

Nothing here calls MTurk: a bad reward, duration or qualification is reported before the
first request. Amounts are :class:`~decimal.Decimal` US dollars with two decimals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from mturk.client import MTurkError

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
_AMOUNT = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")


class MTurkSettingsError(MTurkError):
    """The study's MTurk settings are invalid; ``field`` names the setting."""

    def __init__(self, field_name: str, problem: str) -> None:
        self.field = field_name
        super().__init__(f"mturk.{field_name}: {problem}")


def amount_parse(value: Any, field_name: str, *, allow_zero: bool = False) -> Decimal:
    """A dollar amount in whole cents (``"2.50"``); raises :class:`MTurkSettingsError`."""
    text = str(value).strip() if value is not None else ""
    if not _AMOUNT.match(text):
        raise MTurkSettingsError(
            field_name, f"{value!r} is not an amount in dollars with at most two decimals"
        )
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern already excludes it
        raise MTurkSettingsError(field_name, f"{value!r} is not an amount") from None
    if amount == 0 and not allow_zero:
        raise MTurkSettingsError(field_name, "must be more than 0.00")
    return amount.quantize(Decimal("0.01"))


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


def _int(data: dict, key: str, default: int, *, minimum: int = 0, maximum: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise MTurkSettingsError(key, f"must be a whole number from {minimum} to {maximum}")
    return value


def _custom(items: Any) -> list[dict]:
    if not isinstance(items, list):
        raise MTurkSettingsError("qualifications.custom", "must be a list")
    out = []
    for i, item in enumerate(items):
        name = f"qualifications.custom[{i}]"
        if not isinstance(item, dict) or not re.match(
            r"^[A-Z0-9]{1,64}$", str(item.get("qualification_type_id", ""))
        ):
            raise MTurkSettingsError(name, "needs a qualification_type_id (A-Z, 0-9)")
        comparator = item.get("comparator", "Exists")
        if comparator not in COMPARATORS:
            raise MTurkSettingsError(name, f"comparator {comparator!r} is not one of {COMPARATORS}")
        req = {
            "QualificationTypeId": item["qualification_type_id"],
            "Comparator": comparator,
            "ActionsGuarded": "Accept",
        }
        values = item.get("integer_values", [])
        if comparator in {"Exists", "DoesNotExist"}:
            if values:
                raise MTurkSettingsError(name, f"{comparator} takes no values")
        elif not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise MTurkSettingsError(name, f"{comparator} needs integer_values")
        else:
            req["IntegerValues"] = values
        out.append(req)
    return out


def hit_settings_from_study(study: Any) -> HitSettings:
    """Read and check ``study.mturk`` (the spec's ``mturk`` block; see
    ``studyplatform.studies.services.specs``). Raises :class:`MTurkSettingsError` naming the field."""
    data = study.mturk or {}
    if not data:
        raise MTurkSettingsError("", f"study {study.slug} has no mturk settings (a lab-only study)")
    title = str(data.get("title") or "").strip()
    if not title or len(title) > 128:
        raise MTurkSettingsError("title", "must be 1 to 128 characters")
    description = str(data.get("description") or title).strip()[:2000]
    keywords = data.get("keywords") or []
    if isinstance(keywords, str):
        keywords = [k.strip() for k in keywords.split(",")]
    keywords_text = ", ".join(k for k in (str(k).strip() for k in keywords) if k)[:1000]
    quals = data.get("qualifications") or {}
    if not isinstance(quals, dict):
        raise MTurkSettingsError("qualifications", "must be a mapping")
    locales = quals.get("locales") or []
    if not isinstance(locales, list) or not all(
        isinstance(c, str) and re.match(r"^[A-Z]{2}$", c) for c in locales
    ):
        raise MTurkSettingsError("qualifications.locales", "must be a list of codes such as US")
    at_least = quals.get("approved_hits_at_least")
    above = quals.get("approval_rate_above")
    for key, value, top in (
        ("qualifications.approved_hits_at_least", at_least, 10**9),
        ("qualifications.approval_rate_above", above, 99),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top
        ):
            raise MTurkSettingsError(key, f"must be a whole number from 0 to {top}")
    return HitSettings(
        title=title,
        description=description,
        keywords=keywords_text,
        reward=amount_parse(data.get("reward"), "reward"),
        lifetime_seconds=3600 * _int(data, "lifetime_hours", 72, minimum=1, maximum=24 * 365),
        assignment_duration_seconds=60
        * _int(data, "assignment_duration_minutes", 60, minimum=1, maximum=24 * 60 * 365),
        auto_approval_delay_seconds=3600
        * _int(data, "auto_approval_delay_hours", 72, maximum=24 * 30),
        frame_height=_int(data, "frame_height", 900, maximum=10_000),
        locales=list(locales),
        approved_hits_at_least=at_least,
        approval_rate_above=above,
        masters=bool(quals.get("masters", False)),
        custom=_custom(quals.get("custom", [])),
        exclude_participated=bool(quals.get("exclude_participated", True)),
        exclude_participated_any_study=bool(quals.get("exclude_participated_any_study", False)),
        planned_bonus=amount_parse(
            data.get("planned_bonus", "0"), "planned_bonus", allow_zero=True
        ),
        production=data.get("production") is True,
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
