"""Worker operations of the local endpoint: blocks and messages.

A blocked worker still sees the requester's HITs but cannot accept them (the worker's page says
why); ``NotifyWorkers`` reaches only workers who have worked for the requester, at most 100 per
call, and the message is listed on the worker's page.
"""

from __future__ import annotations

from mturk.local.common import ApiError

MAX_SUBJECT_CHARS = 200
MAX_MESSAGE_CHARS = 4096


class WorkersApi:
    def op_CreateWorkerBlock(self, db, now, params):
        if not params["Reason"].strip():
            raise ApiError("Reason must not be empty: the worker is told why.")
        db.execute(
            "INSERT OR REPLACE INTO blocks VALUES (?, ?)", (params["WorkerId"], params["Reason"])
        )
        return {}

    def op_DeleteWorkerBlock(self, db, now, params):
        # Unblocking a worker who is not blocked changes nothing and is not an error.
        db.execute("DELETE FROM blocks WHERE worker_id=?", (params["WorkerId"],))
        return {}

    def op_ListWorkerBlocks(self, db, now, params):
        items = [
            {"WorkerId": r["worker_id"], "Reason": r["reason"]}
            for r in db.execute("SELECT * FROM blocks ORDER BY worker_id")
        ]
        page, extra = self._page("ListWorkerBlocks", params, items)
        return {"WorkerBlocks": page, **extra}

    def op_NotifyWorkers(self, db, now, params):
        ids = params["WorkerIds"]
        if not 1 <= len(ids) <= 100:
            raise ApiError(
                f"WorkerIds must hold 1 to 100 worker ids; {len(ids)} given.",
                "AWS.ParameterOutOfRange",
            )
        if not params["Subject"].strip() or not params["MessageText"].strip():
            raise ApiError("Subject and MessageText must not be empty.")
        if len(params["Subject"]) > MAX_SUBJECT_CHARS:
            raise ApiError(f"Subject is longer than {MAX_SUBJECT_CHARS} characters.")
        if len(params["MessageText"]) > MAX_MESSAGE_CHARS:
            raise ApiError(f"MessageText is longer than {MAX_MESSAGE_CHARS} characters.")
        failures = []
        for worker_id in dict.fromkeys(ids):
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
