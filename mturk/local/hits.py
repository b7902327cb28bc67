"""HIT operations of the local endpoint: HIT types, creating, reading, listing, expiring,
extending, reviewing, retyping and deleting HITs, and their review policies.

Each ``op_<Operation>(db, now, params)`` runs inside the store's transaction on a request that
already passed the service model's checks (:mod:`mturk.local.validation`); the rules here are
MTurk's own and answer ``RequestError`` (``ParameterValidationError`` for a question MTurk cannot
use). Identical HIT-type properties give the same HIT type, as on MTurk.
"""

from __future__ import annotations

import json

from mturk.local.common import (
    LOCALE_QUALIFICATION,
    SYSTEM_QUALIFICATIONS,
    ApiError,
    money,
    new_id,
)
from mturk.local.questions import question_parse

YEAR_SECONDS = 365 * 24 * 3600
DEFAULT_AUTO_APPROVAL_SECONDS = 30 * 24 * 3600
# MTurk's limits on HIT properties (characters).
TEXT_LIMITS = {"Title": 128, "Description": 2000, "Keywords": 1000, "RequesterAnnotation": 255}
POLICY_NAMES = {
    "AssignmentReviewPolicy": "ScoreMyKnownAnswers/2011-09-01",
    "HITReviewPolicy": "SimplePlurality/2011-09-01",
}
NUMERIC_COMPARATORS = {
    "LessThan",
    "LessThanOrEqualTo",
    "GreaterThan",
    "GreaterThanOrEqualTo",
    "EqualTo",
    "NotEqualTo",
}


def out_of_range(name: str, value, low: int, high: int) -> ApiError:
    return ApiError(
        f"The value {value} for {name} is invalid: it must be between {low} and {high}.",
        "AWS.ParameterOutOfRange",
    )


def check_range(params: dict, name: str, low: int, high: int, default=None):
    value = params.get(name, default)
    if value is not None and not low <= value <= high:
        raise out_of_range(name, value, low, high)
    return value


class HitsApi:
    # --- HIT types --------------------------------------------------------------------------
    def _requirements_check(self, db, requirements: list) -> None:
        if len(requirements) > 10:
            raise ApiError(
                f"A HIT can have at most 10 QualificationRequirements; {len(requirements)} given."
            )
        for req in requirements:
            type_id, comparator = req["QualificationTypeId"], req["Comparator"]
            ints, locales = req.get("IntegerValues") or [], req.get("LocaleValues") or []
            where = f"QualificationRequirement {type_id} ({comparator})"
            if type_id not in SYSTEM_QUALIFICATIONS:
                self._qualification_type_row(db, type_id)
            if req.get("RequiredToPreview") is not None and req.get("ActionsGuarded"):
                raise ApiError(f"{where}: use ActionsGuarded or RequiredToPreview, not both.")
            if comparator in {"Exists", "DoesNotExist"}:
                if ints or locales:
                    raise ApiError(f"{where}: Comparator {comparator} takes no values.")
                continue
            if type_id == LOCALE_QUALIFICATION:
                if ints or not locales:
                    raise ApiError(f"{where}: the locale qualification takes LocaleValues.")
                if comparator not in {"EqualTo", "NotEqualTo", "In", "NotIn"}:
                    raise ApiError(f"{where}: locales compare with EqualTo, NotEqualTo, In, NotIn.")
                values, limit = locales, 30
            else:
                if locales or not ints:
                    raise ApiError(f"{where}: takes IntegerValues (LocaleValues only for locale).")
                values, limit = ints, 15
            if comparator in NUMERIC_COMPARATORS and len(values) != 1:
                raise ApiError(f"{where}: Comparator {comparator} takes exactly one value.")
            if len(values) > limit:
                raise ApiError(f"{where}: In and NotIn take at most {limit} values.")

    def _hit_type_create(self, db, now: float, params: dict) -> str:
        for name, limit in TEXT_LIMITS.items():
            if name != "RequesterAnnotation" and len(params.get(name) or "") > limit:
                raise ApiError(f"{name} is longer than {limit} characters.")
        for name in ("Title", "Description"):
            if not params[name].strip():
                raise ApiError(f"{name} must not be empty.")
        if money(params["Reward"], "Reward") < money("0.01", "Reward"):
            raise ApiError(f"Reward {params['Reward']} is under the minimum of 0.01.")
        duration = check_range(params, "AssignmentDurationInSeconds", 30, YEAR_SECONDS)
        delay = check_range(
            params, "AutoApprovalDelayInSeconds", 0, 30 * 24 * 3600, DEFAULT_AUTO_APPROVAL_SECONDS
        )
        requirements = params.get("QualificationRequirements") or []
        self._requirements_check(db, requirements)
        properties = {
            key: params[key]
            for key in (
                "Title",
                "Description",
                "Keywords",
                "Reward",
                "AssignmentDurationInSeconds",
                "AutoApprovalDelayInSeconds",
                "QualificationRequirements",
            )
            if params.get(key) is not None
        }
        key = json.dumps(properties, sort_keys=True)
        row = db.execute("SELECT id FROM hit_types WHERE params=?", (key,)).fetchone()
        if row:  # MTurk returns the same HIT type for identical properties
            return row["id"]
        type_id = new_id()
        db.execute(
            "INSERT INTO hit_types VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                type_id,
                key,
                params["Title"],
                params["Description"],
                params.get("Keywords", ""),
                params["Reward"],
                duration,
                delay,
                json.dumps(requirements),
                now,
            ),
        )
        return type_id

    def op_CreateHITType(self, db, now, params):
        return {"HITTypeId": self._hit_type_create(db, now, params)}

    # --- creating HITs ----------------------------------------------------------------------
    def _hit_create(self, db, now: float, params: dict, hit_type_id: str) -> dict:
        token = params.get("UniqueRequestToken")
        seen = self._token_seen(db, "CreateHIT", token, now)
        if seen:
            raise ApiError(
                f"The HIT with ID {seen} already exists. (UniqueRequestToken {token})",
                "AWS.MechanicalTurk.HitAlreadyExists",
            )
        max_assignments = check_range(params, "MaxAssignments", 1, 1_000_000, 1)
        lifetime = check_range(params, "LifetimeInSeconds", 30, YEAR_SECONDS)
        if len(params.get("RequesterAnnotation") or "") > TEXT_LIMITS["RequesterAnnotation"]:
            raise ApiError("RequesterAnnotation is longer than 255 characters.")
        if params.get("HITLayoutId"):
            raise ApiError(
                f"HITLayout {params['HITLayoutId']} does not exist (the local endpoint has no "
                "layouts; pass a Question).",
                "AWS.MechanicalTurk.HITLayoutDoesNotExist",
            )
        if not params.get("Question"):
            raise ApiError("Either a Question or a HITLayoutId must be provided.")
        question_parse(params["Question"])
        policies = {}
        for name, policy_name in POLICY_NAMES.items():
            policy = params.get(name)
            if policy is not None and policy["PolicyName"] != policy_name:
                raise ApiError(f"{name} PolicyName must be {policy_name}.")
            policies[name] = None if policy is None else json.dumps(policy)
        hit_id = new_id()
        db.execute(
            "INSERT INTO hits (id, hit_type_id, max_assignments, question, annotation, created, "
            "expiration, assignment_policy, hit_policy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                hit_id,
                hit_type_id,
                max_assignments,
                params["Question"],
                params.get("RequesterAnnotation", ""),
                now,
                now + lifetime,
                policies["AssignmentReviewPolicy"],
                policies["HITReviewPolicy"],
            ),
        )
        # CreateHIT and CreateHITWithHITType share the token space: both create a HIT.
        self._token_save(db, "CreateHIT", token, hit_id, now)
        self._event(db, now, hit_id, "HITCreated")
        return {"HIT": self._hit_view(db, hit_id, now)}

    def op_CreateHIT(self, db, now, params):
        token = params.get("UniqueRequestToken")
        seen = self._token_seen(db, "CreateHIT", token, now)
        if seen:  # refuse before a HIT type is made
            return self._hit_create(db, now, params, "")
        hit_type_id = self._hit_type_create(db, now, params)
        return self._hit_create(db, now, params, hit_type_id)

    def op_CreateHITWithHITType(self, db, now, params):
        if not db.execute("SELECT 1 FROM hit_types WHERE id=?", (params["HITTypeId"],)).fetchone():
            raise ApiError(
                f"HITType {params['HITTypeId']} does not exist.",
                "AWS.MechanicalTurk.HITTypeDoesNotExist",
            )
        return self._hit_create(db, now, params, params["HITTypeId"])

    # --- reading ----------------------------------------------------------------------------
    def op_GetHIT(self, db, now, params):
        return {"HIT": self._hit_view(db, params["HITId"], now)}

    def _hit_ids(self, db, where: str = "", args: tuple = ()) -> list[str]:
        return [
            r["id"]
            for r in db.execute(
                f"SELECT id FROM hits WHERE deleted IS NULL {where} ORDER BY created, id", args
            )
        ]

    def op_ListHITs(self, db, now, params):
        page, extra = self._page("ListHITs", params, self._hit_ids(db))
        return {"HITs": [self._hit_view(db, i, now) for i in page], **extra}

    def op_ListReviewableHITs(self, db, now, params):
        status = params.get("Status") or "Reviewable"
        where, args = (
            ("AND hit_type_id=?", (params["HITTypeId"],)) if params.get("HITTypeId") else ("", ())
        )
        ids = [
            i
            for i in self._hit_ids(db, where, args)
            if self._hit_view(db, i, now)["HITStatus"] == status
        ]
        page, extra = self._page("ListReviewableHITs", params, ids)
        return {"HITs": [self._hit_view(db, i, now) for i in page], **extra}

    def op_ListHITsForQualificationType(self, db, now, params):
        type_id = params["QualificationTypeId"]
        if type_id not in SYSTEM_QUALIFICATIONS:
            self._qualification_type_row(db, type_id)
        ids = [
            i
            for i in self._hit_ids(db)
            if any(
                req["QualificationTypeId"] == type_id
                for req in self._hit_view(db, i, now)["QualificationRequirements"]
            )
        ]
        page, extra = self._page("ListHITsForQualificationType", params, ids)
        return {"HITs": [self._hit_view(db, i, now) for i in page], **extra}

    def op_ListReviewPolicyResultsForHIT(self, db, now, params):
        hit = self._hit_row(db, params["HITId"], deleted_ok=False)
        levels = params.get("PolicyLevels") or ["Assignment", "HIT"]
        answer: dict = {"HITId": hit["id"]}
        # Policies are stored and returned; the endpoint does not run them, so no results.
        for level, column, name in (
            ("Assignment", "assignment_policy", "AssignmentReviewPolicy"),
            ("HIT", "hit_policy", "HITReviewPolicy"),
        ):
            if level in levels and hit[column]:
                answer[name] = json.loads(hit[column])
                answer[f"{level}ReviewReport"] = {"ReviewResults": [], "ReviewActions": []}
        return answer

    # --- changing ---------------------------------------------------------------------------
    def op_UpdateExpirationForHIT(self, db, now, params):
        hit = self._hit_row(db, params["HITId"], deleted_ok=False)
        expire_at = float(params["ExpireAt"])
        # A time in the past expires the HIT at once (the documented behaviour).
        expiration = expire_at if expire_at > now else now
        db.execute("UPDATE hits SET expiration=? WHERE id=?", (expiration, hit["id"]))
        event = "HITExpired" if expiration <= now else "HITExtended"
        self._event(db, now, hit["id"], event)
        return {}

    def op_CreateAdditionalAssignmentsForHIT(self, db, now, params):
        hit = self._hit_row(db, params["HITId"], deleted_ok=False)
        extra = params["NumberOfAdditionalAssignments"]
        if not 1 <= extra <= 1_000_000:
            raise out_of_range("NumberOfAdditionalAssignments", extra, 1, 1_000_000)
        token = params.get("UniqueRequestToken")
        seen = self._token_seen(db, "CreateAdditionalAssignmentsForHIT", token, now)
        if seen:
            raise ApiError(
                f"The extend HIT request {seen} already exists. (UniqueRequestToken {token})",
                "AWS.MechanicalTurk.DuplicateRequest",
            )
        total = hit["max_assignments"] + extra
        if hit["max_assignments"] < 10 <= total:
            raise ApiError(
                f"HIT {hit['id']} has {hit['max_assignments']} assignments; it cannot be extended "
                f"to {total} (10 or more).",
                "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease",
            )
        db.execute("UPDATE hits SET max_assignments=? WHERE id=?", (total, hit["id"]))
        self._token_save(
            db, "CreateAdditionalAssignmentsForHIT", token, f"EXTEND{hit['id']}{total}", now
        )
        self._event(db, now, hit["id"], "HITExtended")
        return {}

    def op_UpdateHITTypeOfHIT(self, db, now, params):
        hit = self._hit_row(db, params["HITId"], deleted_ok=False)
        if not db.execute("SELECT 1 FROM hit_types WHERE id=?", (params["HITTypeId"],)).fetchone():
            raise ApiError(
                f"HITType {params['HITTypeId']} does not exist.",
                "AWS.MechanicalTurk.HITTypeDoesNotExist",
            )
        db.execute("UPDATE hits SET hit_type_id=? WHERE id=?", (params["HITTypeId"], hit["id"]))
        return {}

    def _invalid_state(self, hit_id: str, status: str, allowed: str) -> ApiError:
        return ApiError(
            f"This HIT is currently in the state '{status}'. This operation can be called with "
            f"a status of: {allowed} (HIT {hit_id}).",
            "AWS.MechanicalTurk.InvalidHITState",
        )

    def op_UpdateHITReviewStatus(self, db, now, params):
        hit_id = params["HITId"]
        self._hit_row(db, hit_id, deleted_ok=False)
        status = self._hit_view(db, hit_id, now)["HITStatus"]
        revert = bool(params.get("Revert"))
        wanted = "Reviewing" if revert else "Reviewable"
        if status != wanted:
            raise self._invalid_state(hit_id, status, wanted)
        db.execute("UPDATE hits SET reviewing=? WHERE id=?", (0 if revert else 1, hit_id))
        return {}

    def op_DeleteHIT(self, db, now, params):
        hit_id = params["HITId"]
        self._hit_row(db, hit_id, deleted_ok=False)
        status = self._hit_view(db, hit_id, now)["HITStatus"]
        if status not in {"Reviewable", "Reviewing"}:
            raise self._invalid_state(hit_id, status, "Reviewing, Reviewable")
        waiting = db.execute(
            "SELECT COUNT(*) FROM assignments WHERE hit_id=? AND status='Submitted'", (hit_id,)
        ).fetchone()[0]
        if waiting:
            raise ApiError(
                f"HIT {hit_id} has {waiting} submitted assignment(s) not yet approved or "
                "rejected; it cannot be deleted.",
                "AWS.MechanicalTurk.InvalidHITState",
            )
        db.execute("UPDATE hits SET deleted=? WHERE id=?", (now, hit_id))
        self._event(db, now, hit_id, "HITDisposed")
        return {}
