"""Assignment and payment operations of the local endpoint: listing and reading assignments,
approving (also over a rejection), rejecting, bonuses and the account balance.

Only a Submitted assignment can be approved or rejected; a Rejected one can be approved with
``OverrideRejection``; an approval pays the reward plus MTurk's fee from the balance; a bonus
needs a submitted assignment of that worker and is paid once per ``UniqueRequestToken``.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal

from mturk.local.common import LISTED_STATUSES, MAX_FEEDBACK_CHARS, ApiError, money


def _feedback(params: dict) -> str | None:
    text = params.get("RequesterFeedback")
    if text is not None and len(text) > MAX_FEEDBACK_CHARS:
        raise ApiError(
            f"RequesterFeedback is {len(text)} characters; at most {MAX_FEEDBACK_CHARS}.",
            "AWS.ParameterOutOfRange",
        )
    return text


def _wrong_state(row: sqlite3.Row) -> ApiError:
    return ApiError(
        f"This operation can be called with a status of: Submitted "
        f"(assignment {row['id']} is {row['status']}).",
        "AWS.MechanicalTurk.InvalidAssignmentState",
    )


class AssignmentsApi:
    def op_GetAccountBalance(self, db, now, params):
        balance = db.execute("SELECT value FROM meta WHERE key='balance'").fetchone()[0]
        return {"AvailableBalance": f"{Decimal(balance):.2f}", "OnHoldBalance": "0.00"}

    def op_ListAssignmentsForHIT(self, db, now, params):
        self._hit_row(db, params["HITId"], deleted_ok=False)
        statuses = params.get("AssignmentStatuses") or list(LISTED_STATUSES)
        marks = ",".join("?" * len(statuses))
        ids = [
            r["id"]
            for r in db.execute(
                f"SELECT id FROM assignments WHERE hit_id=? AND status IN ({marks}) "
                "ORDER BY accept_time, id",
                (params["HITId"], *statuses),
            )
        ]
        page, extra = self._page("ListAssignmentsForHIT", params, ids)
        return {"Assignments": [self._assignment_view(db, i) for i in page], **extra}

    def op_GetAssignment(self, db, now, params):
        view = self._assignment_view(db, params["AssignmentId"], any_status=False)
        return {"Assignment": view, "HIT": self._hit_view(db, view["HITId"], now)}

    def _assignment_row(self, db, assignment_id: str) -> sqlite3.Row:
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
        feedback = _feedback(params)
        row = self._assignment_row(db, params["AssignmentId"])
        override = row["status"] == "Rejected" and params.get("OverrideRejection")
        if row["status"] != "Submitted" and not override:
            raise _wrong_state(row)
        self._pay(db, Decimal(row["reward"]), row["max_assignments"])
        db.execute(
            "UPDATE assignments SET status='Approved', approval_time=?, feedback=? WHERE id=?",
            (now, feedback, row["id"]),
        )
        self._event(db, now, row["hit_id"], "AssignmentApproved", row["id"])
        return {}

    def op_RejectAssignment(self, db, now, params):
        feedback = _feedback(params)
        row = self._assignment_row(db, params["AssignmentId"])
        if row["status"] != "Submitted":
            raise _wrong_state(row)
        db.execute(
            "UPDATE assignments SET status='Rejected', rejection_time=?, feedback=? WHERE id=?",
            (now, feedback, row["id"]),
        )
        self._event(db, now, row["hit_id"], "AssignmentRejected", row["id"])
        return {}

    def op_SendBonus(self, db, now, params):
        amount = money(params["BonusAmount"], "BonusAmount")
        if amount <= 0:
            raise ApiError("BonusAmount must be more than 0.", "AWS.ParameterOutOfRange")
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
        if bool(params.get("HITId")) == bool(params.get("AssignmentId")):
            raise ApiError("Give either HITId or AssignmentId (exactly one).")
        if params.get("HITId"):
            self._hit_row(db, params["HITId"])
            rows = db.execute(
                "SELECT b.* FROM bonuses b JOIN assignments a ON a.id = b.assignment_id "
                "WHERE a.hit_id=? ORDER BY b.id",
                (params["HITId"],),
            ).fetchall()
        else:
            self._assignment_row(db, params["AssignmentId"])
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
        page, extra = self._page("ListBonusPayments", params, items)
        return {"BonusPayments": page, **extra}
