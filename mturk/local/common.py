"""Constants, the error answer and small helpers shared by the local endpoint's modules."""

from __future__ import annotations

import re
import secrets
import string
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.sax.saxutils import escape

LOCALE_QUALIFICATION = "00000000000000000071"
APPROVED_COUNT_QUALIFICATION = "00000000000000000040"
APPROVAL_RATE_QUALIFICATION = "000000000000000000L0"
MASTERS_QUALIFICATIONS = ("2ARFPLSP75KLA8M8DH1HTEQVJT3SY6", "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH")
TOKEN_LIFETIME_SECONDS = 24 * 3600
CURRENCY = re.compile(r"^[0-9]+(\.)?[0-9]{0,2}$")
WORKER_ID = re.compile(r"^A[A-Z0-9]{1,63}$")
LIVE_STATUSES = ("Accepted", "Submitted", "Approved", "Rejected")
LISTED_STATUSES = ("Submitted", "Approved", "Rejected")
# MTurk's system qualification types: (name, description); workers cannot request them.
SYSTEM_QUALIFICATIONS = {
    LOCALE_QUALIFICATION: ("Worker_Locale", "The location of the worker (ISO 3166)."),
    APPROVED_COUNT_QUALIFICATION: ("Worker_NumberHITsApproved", "HITs the worker had approved."),
    APPROVAL_RATE_QUALIFICATION: (
        "Worker_PercentAssignmentsApproved",
        "Percentage of the worker's submitted assignments that were approved.",
    ),
    MASTERS_QUALIFICATIONS[0]: ("Masters", "Workers with the Masters qualification (sandbox)."),
    MASTERS_QUALIFICATIONS[1]: ("Masters", "Workers with the Masters qualification."),
}
MAX_FEEDBACK_CHARS = 1024


class ApiError(Exception):
    """An MTurk error answer: HTTP 400 with ``__type``, ``Message`` and ``TurkErrorCode``."""

    def __init__(self, message: str, turk_code: str = "", type_: str = "RequestError") -> None:
        super().__init__(message)
        self.type = type_
        self.message = message
        self.turk_code = turk_code

    def body(self) -> dict:
        body = {"__type": self.type, "Message": self.message}
        if self.turk_code:
            body["TurkErrorCode"] = self.turk_code
        return body


def new_id(length: int = 30, prefix: str = "") -> str:
    alphabet = string.ascii_uppercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length - len(prefix)))


def money(text: Any, field: str) -> Decimal:
    if not isinstance(text, str) or not CURRENCY.match(text):
        raise ApiError(f"{field} {text!r} is not a valid amount.", "AWS.ParameterOutOfRange")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ApiError(f"{field} {text!r} is not a valid amount.") from None


def fee(amount: Decimal, max_assignments: int) -> Decimal:
    """MTurk's commission on ``amount``: 20%, 40% for HITs of 10 or more assignments, min $0.01."""
    rate = Decimal("0.40") if max_assignments >= 10 else Decimal("0.20")
    return max((amount * rate).quantize(Decimal("0.01")), Decimal("0.01"))


def answer_xml(answers: dict[str, str]) -> str:
    """The ``Answer`` of an assignment: MTurk's QuestionFormAnswers document."""
    parts = [
        "<?xml version='1.0' encoding='UTF-8'?>"
        '<QuestionFormAnswers xmlns="http://mechanicalturk.amazonaws.com/'
        'AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd">'
    ]
    for key, value in sorted(answers.items()):
        parts.append(
            f"<Answer><QuestionIdentifier>{escape(key)}</QuestionIdentifier>"
            f"<FreeText>{escape(value)}</FreeText></Answer>"
        )
    parts.append("</QuestionFormAnswers>")
    return "".join(parts)
