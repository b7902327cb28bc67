"""The requester operations of the local endpoint (``op_<Operation>``), mixed into
:class:`mturk.local.store.Store`. Each runs inside the store's transaction, gets the database
connection, the current time and the request's parameters, and returns the answer's JSON
(or raises :class:`ApiError`). The rules are listed in :mod:`mturk.local.store`.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

from mturk.local.common import LISTED_STATUSES, ApiError, money, new_id


class RequesterApi:
    @staticmethod
    def _require(params: dict, *names: str) -> None:
        missing = [n for n in names if params.get(n) in (None, "")]
        if missing:
            raise ApiError(f"Missing required parameter(s): {', '.join(missing)}.")

    def op_GetAccountBalance(self, db, now, params):
        balance = db.execute("SELECT value FROM meta WHERE key='balance'").fetchone()[0]
        return {"AvailableBalance": f"{Decimal(balance):.2f}", "OnHoldBalance": "0.00"}

    def op_CreateQualificationType(self, db, now, params):
        self._require(params, "Name", "Description", "QualificationTypeStatus")
        if db.execute(
            "SELECT 1 FROM qualification_types WHERE name=?", (params["Name"],)
        ).fetchone():
            raise ApiError(
                f"You have already created a QualificationType with this name: {params['Name']}",
                "AWS.MechanicalTurk.QualificationTypeAlreadyExists",
            )
        type_id = new_id()
        db.execute(
            "INSERT INTO qualification_types VALUES (?, ?, ?, ?, ?)",
            (
                type_id,
                params["Name"],
                params["Description"],
                params["QualificationTypeStatus"],
                now,
            ),
        )
        return {"QualificationType": self._qualification_type_view(db, type_id)}

    def _qualification_type_view(self, db, type_id: str) -> dict:
        row = db.execute("SELECT * FROM qualification_types WHERE id=?", (type_id,)).fetchone()
        return {
            "QualificationTypeId": row["id"],
            "CreationTime": row["created"],
            "Name": row["name"],
            "Description": row["description"],
            "QualificationTypeStatus": row["status"],
            "IsRequestable": False,
            "AutoGranted": False,
        }

    def op_ListQualificationTypes(self, db, now, params):
        query = params.get("Query") or ""
        rows = db.execute(
            "SELECT id FROM qualification_types WHERE instr(name, ?) > 0 ORDER BY created",
            (query,),
        ).fetchall()
        types = [self._qualification_type_view(db, r["id"]) for r in rows]
        return {"NumResults": len(types), "QualificationTypes": types}

    def op_AssociateQualificationWithWorker(self, db, now, params):
        self._require(params, "QualificationTypeId", "WorkerId")
        if not db.execute(
            "SELECT 1 FROM qualification_types WHERE id=?", (params["QualificationTypeId"],)
        ).fetchone():
            raise ApiError(
                f"QualificationType {params['QualificationTypeId']} does not exist.",
                "AWS.MechanicalTurk.QualificationTypeDoesNotExist",
            )
        db.execute(
            "INSERT OR REPLACE INTO qualifications VALUES (?, ?, ?, ?)",
            (params["QualificationTypeId"], params["WorkerId"], params.get("IntegerValue", 1), now),
        )
        return {}

    def op_CreateHITType(self, db, now, params):
        self._require(params, "AssignmentDurationInSeconds", "Reward", "Title", "Description")
        money(params["Reward"], "Reward")
        duration = int(params["AssignmentDurationInSeconds"])
        if not 30 <= duration <= 365 * 24 * 3600:
            raise ApiError("AssignmentDurationInSeconds must be between 30 and 31536000.")
        delay = int(params.get("AutoApprovalDelayInSeconds", 30 * 24 * 3600))
        requirements = params.get("QualificationRequirements", [])
        for req in requirements:
            if req.get("Comparator") in {"Exists", "DoesNotExist"} and (
                req.get("IntegerValues") or req.get("LocaleValues")
            ):
                raise ApiError(f"Comparator {req['Comparator']} takes no values.")
        key = json.dumps(params, sort_keys=True)
        row = db.execute("SELECT id FROM hit_types WHERE params=?", (key,)).fetchone()
        if row:  # MTurk returns the same HIT type for identical properties
            return {"HITTypeId": row["id"]}
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
        return {"HITTypeId": type_id}

    def op_CreateHITWithHITType(self, db, now, params):
        self._require(params, "HITTypeId", "LifetimeInSeconds", "Question")
        token = params.get("UniqueRequestToken")
        seen = self._token_seen(db, "CreateHITWithHITType", token, now)
        if seen:
            raise ApiError(
                f"The HIT with ID {seen} already exists. (UniqueRequestToken {token})",
                "AWS.MechanicalTurk.HitAlreadyExists",
            )
        if not db.execute("SELECT 1 FROM hit_types WHERE id=?", (params["HITTypeId"],)).fetchone():
            raise ApiError(f"HITType {params['HITTypeId']} does not exist.")
        max_assignments = int(params.get("MaxAssignments", 1))
        if not 1 <= max_assignments <= 1_000_000:
            raise ApiError("MaxAssignments must be between 1 and 1000000.")
        lifetime = int(params["LifetimeInSeconds"])
        if not 30 <= lifetime <= 365 * 24 * 3600:
            raise ApiError("LifetimeInSeconds must be between 30 and 31536000.")
        if (
            "ExternalQuestion" not in params["Question"]
            and "HTMLQuestion" not in params["Question"]
        ):
            raise ApiError("Question must be an ExternalQuestion or HTMLQuestion document.")
        hit_id = new_id()
        db.execute(
            "INSERT INTO hits VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                hit_id,
                params["HITTypeId"],
                max_assignments,
                params["Question"],
                params.get("RequesterAnnotation", ""),
                now,
                now + lifetime,
            ),
        )
        self._token_save(db, "CreateHITWithHITType", token, hit_id, now)
        return {"HIT": self._hit_view(db, hit_id, now)}

    def op_GetHIT(self, db, now, params):
        self._require(params, "HITId")
        return {"HIT": self._hit_view(db, params["HITId"], now)}

    def _page(self, params: dict, items: list) -> tuple[list, dict]:
        size = int(params.get("MaxResults") or 10)
        if not 1 <= size <= 100:
            raise ApiError("MaxResults must be between 1 and 100.")
        token = params.get("NextToken")
        start = 0
        if token:
            if not str(token).startswith("offset-") or not token[7:].isdigit():
                raise ApiError(f"NextToken {token!r} is not valid.")
            start = int(token[7:])
        page = items[start : start + size]
        extra = {"NumResults": len(page)}
        if start + size < len(items):
            extra["NextToken"] = f"offset-{start + size}"
        return page, extra

    def op_ListHITs(self, db, now, params):
        ids = [r["id"] for r in db.execute("SELECT id FROM hits ORDER BY created, id")]
        page, extra = self._page(params, ids)
        return {"HITs": [self._hit_view(db, i, now) for i in page], **extra}

    def op_ListAssignmentsForHIT(self, db, now, params):
        self._require(params, "HITId")
        self._hit_row(db, params["HITId"])
        statuses = params.get("AssignmentStatuses") or list(LISTED_STATUSES)
        bad = [s for s in statuses if s not in LISTED_STATUSES]
        if bad:
            raise ApiError(f"AssignmentStatuses {bad} are not Submitted, Approved or Rejected.")
        marks = ",".join("?" * len(statuses))
        ids = [
            r["id"]
            for r in db.execute(
                f"SELECT id FROM assignments WHERE hit_id=? AND status IN ({marks}) "
                "ORDER BY accept_time, id",
                (params["HITId"], *statuses),
            )
        ]
        page, extra = self._page(params, ids)
        return {"Assignments": [self._assignment_view(db, i) for i in page], **extra}

    def op_GetAssignment(self, db, now, params):
        self._require(params, "AssignmentId")
        view = self._assignment_view(db, params["AssignmentId"], any_status=False)
        return {"Assignment": view, "HIT": self._hit_view(db, view["HITId"], now)}

    def _submitted_assignment(self, db, assignment_id: str) -> sqlite3.Row:
        row = db.execute(
            "SELECT a.*, t.reward, h.max_assignments FROM assignments a "
            "JOIN hits h ON h.id = a.hit_id JOIN hit_types t ON t.id = h.hit_type_id "
            "WHERE a.id=?",
            (assignment_id,),
        ).fetchone()
        if row is None:
            raise ApiError(
                f"Assignment {assignment_id} does not exist.",
                "AWS.MechanicalTurk.AssignmentDoesNotExist",
            )
        return row

    def op_ApproveAssignment(self, db, now, params):
        self._require(params, "AssignmentId")
        row = self._submitted_assignment(db, params["AssignmentId"])
        override = row["status"] == "Rejected" and params.get("OverrideRejection")
        if row["status"] != "Submitted" and not override:
            raise ApiError(
                f"This operation can be called with a status of: Submitted "
                f"(assignment {row['id']} is {row['status']}).",
                "AWS.MechanicalTurk.InvalidAssignmentState",
            )
        self._pay(db, Decimal(row["reward"]), row["max_assignments"])
        db.execute(
            "UPDATE assignments SET status='Approved', approval_time=?, feedback=? WHERE id=?",
            (now, params.get("RequesterFeedback"), row["id"]),
        )
        return {}

    def op_RejectAssignment(self, db, now, params):
        self._require(params, "AssignmentId", "RequesterFeedback")
        row = self._submitted_assignment(db, params["AssignmentId"])
        if row["status"] != "Submitted":
            raise ApiError(
                f"This operation can be called with a status of: Submitted "
                f"(assignment {row['id']} is {row['status']}).",
                "AWS.MechanicalTurk.InvalidAssignmentState",
            )
        db.execute(
            "UPDATE assignments SET status='Rejected', rejection_time=?, feedback=? WHERE id=?",
            (now, params["RequesterFeedback"], row["id"]),
        )
        return {}

    def op_SendBonus(self, db, now, params):
        self._require(params, "WorkerId", "BonusAmount", "AssignmentId", "Reason")
        amount = money(params["BonusAmount"], "BonusAmount")
        if amount <= 0:
            raise ApiError("BonusAmount must be more than 0.")
        token = params.get("UniqueRequestToken")
        seen = self._token_seen(db, "SendBonus", token, now)
        if seen:
            raise ApiError(
                f"The bonus with request ID {seen} already exists. (UniqueRequestToken {token})",
                "AWS.MechanicalTurk.DuplicateRequest",
            )
        row = db.execute(
            "SELECT * FROM assignments WHERE id=? AND worker_id=? AND status IN "
            "('Submitted', 'Approved', 'Rejected')",
            (params["AssignmentId"], params["WorkerId"]),
        ).fetchone()
        if row is None:
            raise ApiError(
                f"Worker {params['WorkerId']} has no submitted assignment "
                f"{params['AssignmentId']}; a bonus needs one.",
                "AWS.MechanicalTurk.AssignmentDoesNotExist",
            )
        self._pay(db, amount, 1)
        cursor = db.execute(
            "INSERT INTO bonuses (worker_id, assignment_id, amount, reason, token, created) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                params["WorkerId"],
                params["AssignmentId"],
                params["BonusAmount"],
                params["Reason"],
                token,
                now,
            ),
        )
        self._token_save(db, "SendBonus", token, f"BONUS{cursor.lastrowid}", now)
        return {}

    def op_ListBonusPayments(self, db, now, params):
        if params.get("HITId"):
            rows = db.execute(
                "SELECT b.* FROM bonuses b JOIN assignments a ON a.id = b.assignment_id "
                "WHERE a.hit_id=? ORDER BY b.id",
                (params["HITId"],),
            ).fetchall()
        else:
            self._require(params, "AssignmentId")
            rows = db.execute(
                "SELECT * FROM bonuses WHERE assignment_id=? ORDER BY id", (params["AssignmentId"],)
            ).fetchall()
        items = [
            {
                "WorkerId": r["worker_id"],
                "BonusAmount": r["amount"],
                "AssignmentId": r["assignment_id"],
                "Reason": r["reason"],
                "GrantTime": r["created"],
            }
            for r in rows
        ]
        page, extra = self._page(params, items)
        return {"BonusPayments": page, **extra}

    def op_UpdateExpirationForHIT(self, db, now, params):
        self._require(params, "HITId", "ExpireAt")
        self._hit_row(db, params["HITId"])
        expire_at = float(params["ExpireAt"])
        # A time in the past expires the HIT at once (the documented behaviour).
        expiration = expire_at if expire_at > now else now
        db.execute("UPDATE hits SET expiration=? WHERE id=?", (expiration, params["HITId"]))
        return {}

    def op_CreateAdditionalAssignmentsForHIT(self, db, now, params):
        self._require(params, "HITId", "NumberOfAdditionalAssignments")
        hit = self._hit_row(db, params["HITId"])
        extra = int(params["NumberOfAdditionalAssignments"])
        if extra < 1:
            raise ApiError("NumberOfAdditionalAssignments must be at least 1.")
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
        return {}

    def op_NotifyWorkers(self, db, now, params):
        self._require(params, "Subject", "MessageText", "WorkerIds")
        ids = params["WorkerIds"]
        if not 1 <= len(ids) <= 100:
            raise ApiError("WorkerIds must hold 1 to 100 worker ids.")
        if len(params["Subject"]) > 200 or len(params["MessageText"]) > 4096:
            raise ApiError("Subject is at most 200 characters and MessageText at most 4096.")
        failures = []
        for worker_id in ids:
            worked = db.execute(
                "SELECT 1 FROM assignments WHERE worker_id=?", (worker_id,)
            ).fetchone()
            if not worked:
                failures.append(
                    {
                        "NotifyWorkersFailureCode": "HardFailure",
                        "NotifyWorkersFailureMessage": "Worker has not worked for you.",
                        "WorkerId": worker_id,
                    }
                )
                continue
            db.execute(
                "INSERT INTO notifications (worker_id, subject, message, created) VALUES (?, ?, ?, ?)",
                (worker_id, params["Subject"], params["MessageText"], now),
            )
        return {"NotifyWorkersFailureStatuses": failures}

    def op_CreateWorkerBlock(self, db, now, params):
        self._require(params, "WorkerId", "Reason")
        db.execute(
            "INSERT OR REPLACE INTO blocks VALUES (?, ?)", (params["WorkerId"], params["Reason"])
        )
        return {}

    def op_ListWorkerBlocks(self, db, now, params):
        items = [
            {"WorkerId": r["worker_id"], "Reason": r["reason"]}
            for r in db.execute("SELECT * FROM blocks ORDER BY worker_id")
        ]
        page, extra = self._page(params, items)
        return {"WorkerBlocks": page, **extra}
