"""Qualification operations of the local endpoint: types (create, read, update, delete,
search), a worker's scores (grant, revoke, read, list) and workers' requests (list, accept,
reject).

MTurk's rules kept here: type names are unique; a ``Test`` needs ``TestDurationInSeconds``, must
be a QuestionForm and cannot go with ``AutoGranted``;
a revoked qualification keeps its row with status ``Revoked`` and stops meeting requirements;
the system types (locale, approval rate, approved HITs, Masters) can be read and searched but
not changed or granted.
"""

from __future__ import annotations

from mturk.local.common import SYSTEM_QUALIFICATIONS, ApiError, new_id
from mturk.local.questions import answer_key_check, question_parse


def _no_score(type_id: str, worker_id: str) -> ApiError:
    return ApiError(
        f"You requested a Qualification that does not exist: worker {worker_id} has no "
        f"qualification {type_id}.",
        "AWS.MechanicalTurk.QualificationDoesNotExist",
    )


class QualificationsApi:
    # --- types ------------------------------------------------------------------------------
    def _qualification_type_check(self, params: dict) -> None:
        test, auto = params.get("Test"), params.get("AutoGranted")
        if test:
            question_parse(test, allowed=("QuestionForm",))
            if params.get("TestDurationInSeconds") is None:
                raise ApiError("A Test needs TestDurationInSeconds.")
            if auto:
                raise ApiError("A qualification type with a Test cannot be AutoGranted.")
        if params.get("AnswerKey"):
            if len(params["AnswerKey"].encode()) > 65_535:
                raise ApiError("AnswerKey is longer than 65535 bytes.")
            answer_key_check(params["AnswerKey"])
        for name in ("TestDurationInSeconds", "RetryDelayInSeconds"):
            if params.get(name) is not None and params[name] < 0:
                raise ApiError(f"{name} must not be negative.", "AWS.ParameterOutOfRange")

    def op_CreateQualificationType(self, db, now, params):
        if not params["Name"].strip():
            raise ApiError("Name must not be empty.")
        self._qualification_type_check(params)
        if db.execute(
            "SELECT 1 FROM qualification_types WHERE name=?", (params["Name"],)
        ).fetchone():
            raise ApiError(
                f"You have already created a QualificationType with this name: {params['Name']}",
                "AWS.MechanicalTurk.QualificationTypeAlreadyExists",
            )
        type_id = new_id()
        db.execute(
            "INSERT INTO qualification_types (id, name, description, status, created, keywords, "
            "retry_delay, test, answer_key, test_duration, auto_granted, auto_granted_value) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                type_id,
                params["Name"],
                params["Description"],
                params["QualificationTypeStatus"],
                now,
                params.get("Keywords"),
                params.get("RetryDelayInSeconds"),
                params.get("Test"),
                params.get("AnswerKey"),
                params.get("TestDurationInSeconds"),
                int(bool(params.get("AutoGranted"))),
                params.get("AutoGrantedValue", 1),
            ),
        )
        return {"QualificationType": self._qualification_type_view(db, type_id)}

    def op_GetQualificationType(self, db, now, params):
        return {
            "QualificationType": self._qualification_type_view(db, params["QualificationTypeId"])
        }

    def _own_type(self, db, type_id: str):
        if type_id in SYSTEM_QUALIFICATIONS:
            raise ApiError(
                f"QualificationType {type_id} is a system type; only its owner can change it.",
                "AWS.MechanicalTurk.QualificationTypeNotOwned",
            )
        return self._qualification_type_row(db, type_id)

    def op_UpdateQualificationType(self, db, now, params):
        row = self._own_type(db, params["QualificationTypeId"])
        merged = {
            "Test": params.get("Test", row["test"]),
            "TestDurationInSeconds": params.get("TestDurationInSeconds", row["test_duration"]),
            "AutoGranted": params.get("AutoGranted", bool(row["auto_granted"])),
            "AnswerKey": params.get("AnswerKey", row["answer_key"]),
        }
        if "RetryDelayInSeconds" in params:
            merged["RetryDelayInSeconds"] = params["RetryDelayInSeconds"]
        self._qualification_type_check(merged)
        columns = {
            "Description": "description",
            "QualificationTypeStatus": "status",
            "Test": "test",
            "AnswerKey": "answer_key",
            "TestDurationInSeconds": "test_duration",
            "RetryDelayInSeconds": "retry_delay",
            "AutoGranted": "auto_granted",
            "AutoGrantedValue": "auto_granted_value",
        }
        for name, column in columns.items():
            if params.get(name) is not None:
                value = int(params[name]) if name == "AutoGranted" else params[name]
                db.execute(
                    f"UPDATE qualification_types SET {column}=? WHERE id=?", (value, row["id"])
                )
        return {"QualificationType": self._qualification_type_view(db, row["id"])}

    def op_DeleteQualificationType(self, db, now, params):
        row = self._own_type(db, params["QualificationTypeId"])
        for table, column in (
            ("qualifications", "type_id"),
            ("qualification_requests", "type_id"),
            ("qualification_types", "id"),
        ):
            db.execute(f"DELETE FROM {table} WHERE {column}=?", (row["id"],))
        return {}

    def op_ListQualificationTypes(self, db, now, params):
        query = (params.get("Query") or "").lower()
        must_own = params.get("MustBeOwnedByCaller")
        ids = [
            r["id"]
            for r in db.execute(
                "SELECT id, name, description, keywords FROM qualification_types "
                "ORDER BY created, id"
            )
            if query in " ".join(filter(None, (r["name"], r["description"], r["keywords"]))).lower()
        ]
        if not must_own and not params["MustBeRequestable"]:
            ids += [
                i
                for i, (name, description) in SYSTEM_QUALIFICATIONS.items()
                if query in f"{name} {description}".lower()
            ]
        page, extra = self._page("ListQualificationTypes", params, ids)
        types = [self._qualification_type_view(db, i) for i in page]
        return {"QualificationTypes": types, **extra}

    # --- workers' scores --------------------------------------------------------------------
    def op_AssociateQualificationWithWorker(self, db, now, params):
        row = self._own_type(db, params["QualificationTypeId"])
        value = params.get("IntegerValue", 1)
        self._grant(db, row["id"], params["WorkerId"], value, now)
        if params.get("SendNotification"):  # MTurk e-mails the worker; here it is listed
            db.execute(
                "INSERT INTO notifications (worker_id, subject, message, created) "
                "VALUES (?, ?, ?, ?)",
                (
                    params["WorkerId"],
                    f"Qualification granted: {row['name']}",
                    f"You were granted {row['name']} with the value {value}.",
                    now,
                ),
            )
        return {}

    def op_DisassociateQualificationFromWorker(self, db, now, params):
        type_id, worker_id = params["QualificationTypeId"], params["WorkerId"]
        self._own_type(db, type_id)
        changed = db.execute(
            "UPDATE qualifications SET status='Revoked' WHERE type_id=? AND worker_id=? "
            "AND status='Granted'",
            (type_id, worker_id),
        ).rowcount
        if not changed:
            raise _no_score(type_id, worker_id)
        return {}

    def op_GetQualificationScore(self, db, now, params):
        type_id, worker_id = params["QualificationTypeId"], params["WorkerId"]
        if type_id not in SYSTEM_QUALIFICATIONS:
            self._qualification_type_row(db, type_id)
        row = db.execute(
            "SELECT * FROM qualifications WHERE type_id=? AND worker_id=?", (type_id, worker_id)
        ).fetchone()
        if row is None:
            raise _no_score(type_id, worker_id)
        return {"Qualification": self._qualification_view(row)}

    def op_ListWorkersWithQualificationType(self, db, now, params):
        type_id = params["QualificationTypeId"]
        self._own_type(db, type_id)
        status = params.get("Status")
        rows = [
            r
            for r in db.execute(
                "SELECT * FROM qualifications WHERE type_id=? ORDER BY granted, worker_id",
                (type_id,),
            ).fetchall()
            if status is None or r["status"] == status
        ]
        page, extra = self._page("ListWorkersWithQualificationType", params, rows)
        return {"Qualifications": [self._qualification_view(r) for r in page], **extra}

    # --- workers' requests ------------------------------------------------------------------
    def op_ListQualificationRequests(self, db, now, params):
        where, args = "", ()
        if params.get("QualificationTypeId"):
            self._own_type(db, params["QualificationTypeId"])
            where, args = "AND type_id=?", (params["QualificationTypeId"],)
        rows = db.execute(
            f"SELECT * FROM qualification_requests WHERE status='Pending' {where} ORDER BY id",
            args,
        ).fetchall()
        page, extra = self._page("ListQualificationRequests", params, rows)
        return {
            "QualificationRequests": [self._qualification_request_view(r) for r in page],
            **extra,
        }

    def _pending_request(self, db, request_id: str):
        row = None
        if request_id.isdigit():
            row = db.execute(
                "SELECT * FROM qualification_requests WHERE id=?", (int(request_id),)
            ).fetchone()
        if row is None:
            raise ApiError(
                f"QualificationRequest {request_id} does not exist.",
                "AWS.MechanicalTurk.QualificationRequestDoesNotExist",
            )
        if row["status"] != "Pending":
            raise ApiError(
                f"QualificationRequest {request_id} was already {row['status'].lower()}.",
                "AWS.MechanicalTurk.InvalidQualificationRequestState",
            )
        return row

    def op_AcceptQualificationRequest(self, db, now, params):
        row = self._pending_request(db, params["QualificationRequestId"])
        self._grant(db, row["type_id"], row["worker_id"], params.get("IntegerValue", 1), now)
        db.execute(
            "UPDATE qualification_requests SET status='Accepted', decided=? WHERE id=?",
            (now, row["id"]),
        )
        return {}

    def op_RejectQualificationRequest(self, db, now, params):
        row = self._pending_request(db, params["QualificationRequestId"])
        db.execute(
            "UPDATE qualification_requests SET status='Rejected', reason=?, decided=? WHERE id=?",
            (params.get("Reason"), now, row["id"]),
        )
        return {}
