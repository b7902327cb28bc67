"""The simulated workers' side of the local endpoint: which HITs a worker sees, preview,
accept, return, submit, qualification requests and the requester's messages.

Qualification requirements are checked at accept (and at preview and discovery when
``ActionsGuarded`` says so) against the simulated worker's locale, approved-HIT count, approval
rate, Masters flag and granted (not revoked) qualifications. A blocked worker sees the
requester's HITs but cannot accept them. A worker requests a qualification once, or again after
``RetryDelayInSeconds``; an ``AutoGranted`` type is granted at once, a test with an AnswerKey is
scored at once, anything else waits for ``AcceptQualificationRequest``/``RejectQualificationRequest``.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from mturk.local.common import (
    APPROVAL_RATE_QUALIFICATION,
    APPROVED_COUNT_QUALIFICATION,
    LOCALE_QUALIFICATION,
    MASTERS_QUALIFICATIONS,
    ApiError,
    new_id,
)
from mturk.local.questions import answer_key_score, question_parse


class WorkerSide:
    def _worker_qualifies(self, db, worker: sqlite3.Row, requirements: list, action: str) -> str:
        """Empty string when ``worker`` meets every requirement guarding ``action``
        (``"discover"``, ``"preview"`` or ``"accept"``), else the reason."""
        guards = {
            "accept": {"Accept", "PreviewAndAccept", "DiscoverPreviewAndAccept"},
            "preview": {"PreviewAndAccept", "DiscoverPreviewAndAccept"},
            "discover": {"DiscoverPreviewAndAccept"},
        }[action]
        for req in requirements:
            guarded = req.get("ActionsGuarded") or (
                "PreviewAndAccept" if req.get("RequiredToPreview") else "Accept"
            )
            if guarded not in guards:
                continue
            type_id = req["QualificationTypeId"]
            comparator = req["Comparator"]
            if type_id == LOCALE_QUALIFICATION:
                value: Any = (worker["country"], worker["subdivision"])
                wanted = [
                    (loc["Country"], loc.get("Subdivision", ""))
                    for loc in req.get("LocaleValues", [])
                ]
                ok = self._compare_locale(value, comparator, wanted)
            else:
                if type_id == APPROVED_COUNT_QUALIFICATION:
                    value = worker["approved_count"]
                elif type_id == APPROVAL_RATE_QUALIFICATION:
                    value = worker["approval_rate"]
                elif type_id in MASTERS_QUALIFICATIONS:
                    value = 1 if worker["masters"] else None
                else:
                    row = db.execute(
                        "SELECT value FROM qualifications WHERE type_id=? AND worker_id=? "
                        "AND status='Granted'",
                        (type_id, worker["id"]),
                    ).fetchone()
                    value = None if row is None else row["value"]
                ok = self._compare(value, comparator, req.get("IntegerValues", []))
            if not ok:
                wanted = req.get("IntegerValues") or req.get("LocaleValues") or ""
                return f"requirement {type_id} {comparator} {wanted} not met"
        return ""

    @staticmethod
    def _compare_locale(value: tuple, comparator: str, wanted: list) -> bool:
        def match(loc: tuple) -> bool:
            return loc[0] == value[0] and (not loc[1] or loc[1] == value[1])

        if comparator in {"EqualTo", "In"}:
            return any(match(loc) for loc in wanted)
        if comparator in {"NotEqualTo", "NotIn"}:
            return not any(match(loc) for loc in wanted)
        return comparator == "Exists"

    @staticmethod
    def _compare(value: int | None, comparator: str, wanted: list[int]) -> bool:
        if comparator == "Exists":
            return value is not None
        if comparator == "DoesNotExist":
            return value is None
        if value is None:
            return False
        first = wanted[0] if wanted else None
        checks = {
            "LessThan": lambda: value < first,
            "LessThanOrEqualTo": lambda: value <= first,
            "GreaterThan": lambda: value > first,
            "GreaterThanOrEqualTo": lambda: value >= first,
            "EqualTo": lambda: value == first,
            "NotEqualTo": lambda: value != first,
            "In": lambda: value in wanted,
            "NotIn": lambda: value not in wanted,
        }
        return bool(checks[comparator]())

    def hits_for_worker(self, worker_id: str) -> list[dict]:
        """HITs a worker can see: assignable, not guarded from discovery, with whether they
        may accept and the reason when not."""
        with self._tx() as db:
            now = self._now(db)
            self._settle(db, now)
            worker = self._worker_row(db, worker_id)
            out = []
            rows = db.execute("SELECT id FROM hits WHERE deleted IS NULL ORDER BY created")
            for row in rows.fetchall():
                hit = self._hit_view(db, row["id"], now)
                if hit["HITStatus"] != "Assignable":
                    continue
                reqs = json.loads(self._hit_row(db, row["id"])["qualifications"])
                if self._worker_qualifies(db, worker, reqs, "discover"):
                    continue
                hit["reason"] = self._accept_refusal(db, worker, row["id"], now)
                out.append(hit)
        return out

    @staticmethod
    def _worker_row(db, worker_id: str) -> sqlite3.Row:
        worker = db.execute("SELECT * FROM workers WHERE id=?", (worker_id,)).fetchone()
        if worker is None:
            raise ApiError(f"No simulated worker {worker_id!r}.")
        return worker

    def _accept_refusal(self, db, worker: sqlite3.Row, hit_id: str, now: float) -> str:
        hit = self._hit_row(db, hit_id)
        if hit["deleted"] is not None:
            return "this HIT was deleted"
        if hit["expiration"] <= now:
            return "this HIT has expired"
        if db.execute("SELECT 1 FROM blocks WHERE worker_id=?", (worker["id"],)).fetchone():
            return "you are blocked by this requester"
        reason = self._worker_qualifies(db, worker, json.loads(hit["qualifications"]), "accept")
        if reason:
            return f"you do not qualify: {reason}"
        mine = db.execute(
            "SELECT 1 FROM assignments WHERE hit_id=? AND worker_id=? AND status IN "
            "('Accepted', 'Submitted', 'Approved', 'Rejected')",
            (hit_id, worker["id"]),
        ).fetchone()
        if mine:
            return "you already worked on this HIT"
        live = db.execute(
            "SELECT COUNT(*) FROM assignments WHERE hit_id=? AND status IN "
            "('Accepted', 'Submitted', 'Approved', 'Rejected')",
            (hit_id,),
        ).fetchone()[0]
        if live >= hit["max_assignments"]:
            return "no assignments are left on this HIT"
        return ""

    def hit_preview(self, *, worker_id: str, hit_id: str) -> dict:
        with self._tx() as db:
            now = self._now(db)
            self._settle(db, now)
            worker = self._worker_row(db, worker_id)
            hit = self._hit_row(db, hit_id)
            reason = self._worker_qualifies(
                db, worker, json.loads(hit["qualifications"]), "preview"
            )
            if reason:
                raise ApiError(f"You cannot preview this HIT: {reason}.")
            view = self._hit_view(db, hit_id, now)
            view["reason"] = self._accept_refusal(db, worker, hit_id, now)
            return view

    def assignment_accept(self, *, worker_id: str, hit_id: str) -> dict:
        """Worker ``worker_id`` accepts HIT ``hit_id``; returns the assignment (``ApiError``
        with the reason when refused)."""
        with self._tx() as db:
            now = self._now(db)
            self._settle(db, now)
            worker = self._worker_row(db, worker_id)
            reason = self._accept_refusal(db, worker, hit_id, now)
            if reason:
                raise ApiError(f"Worker {worker_id} cannot accept HIT {hit_id}: {reason}.")
            hit = self._hit_row(db, hit_id)
            assignment_id = new_id()
            db.execute(
                "INSERT INTO assignments (id, hit_id, worker_id, status, accept_time, deadline) "
                "VALUES (?, ?, ?, 'Accepted', ?, ?)",
                (assignment_id, hit_id, worker_id, now, now + hit["duration"]),
            )
            self._event(db, now, hit_id, "AssignmentAccepted", assignment_id)
            return self._assignment_view(db, assignment_id)

    def assignment_return(self, *, assignment_id: str) -> dict:
        with self._tx() as db:
            now = self._now(db)
            row = db.execute("SELECT * FROM assignments WHERE id=?", (assignment_id,)).fetchone()
            if row is None or row["status"] != "Accepted":
                raise ApiError(
                    f"Assignment {assignment_id} is not accepted; it cannot be returned."
                )
            db.execute("UPDATE assignments SET status='Returned' WHERE id=?", (assignment_id,))
            self._event(db, now, row["hit_id"], "AssignmentReturned", assignment_id)
            return self._assignment_view(db, assignment_id)

    def assignment_submit(self, *, assignment_id: str, answers: dict[str, str]) -> dict:
        """``/mturk/externalSubmit``: the accepted, unexpired assignment becomes Submitted."""
        with self._tx() as db:
            now = self._now(db)
            self._settle(db, now)
            row = db.execute("SELECT * FROM assignments WHERE id=?", (assignment_id,)).fetchone()
            if row is None:
                raise ApiError(f"Assignment {assignment_id!r} does not exist.")
            if row["status"] != "Accepted":
                raise ApiError(
                    f"Assignment {assignment_id} is {row['status']}; only an accepted assignment "
                    "can be submitted."
                )
            hit = self._hit_row(db, row["hit_id"])
            answer = json.dumps(answers, sort_keys=True)
            db.execute(
                "UPDATE assignments SET status='Submitted', submit_time=?, answer=?, "
                "auto_approval_time=? WHERE id=?",
                (now, answer, now + hit["auto_approval_delay"], assignment_id),
            )
            self._event(db, now, row["hit_id"], "AssignmentSubmitted", assignment_id)
            if self._hit_view(db, row["hit_id"], now)["HITStatus"] == "Reviewable":
                self._event(db, now, row["hit_id"], "HITReviewable")
            return self._assignment_view(db, assignment_id)

    def hit_get(self, hit_id: str) -> dict:
        with self._tx() as db:
            return self._hit_view(db, hit_id, self._now(db))

    def assignment_get_local(self, assignment_id: str) -> dict:
        with self._tx() as db:
            return self._assignment_view(db, assignment_id, any_status=True)

    # --- views ------------------------------------------------------------------------------

    # --- qualifications and messages --------------------------------------------------------
    def qualifications_for_worker(self, worker_id: str) -> list[dict]:
        """Every active requester qualification type with this worker's standing: ``value``
        (granted), ``pending`` (a request waits), ``rejected`` (the last request's reason)."""
        with self._tx() as db:
            now = self._now(db)
            self._worker_row(db, worker_id)
            out = []
            for row in db.execute(
                "SELECT id FROM qualification_types WHERE status='Active' ORDER BY created"
            ).fetchall():
                view = self._qualification_type_view(db, row["id"])
                granted = db.execute(
                    "SELECT value FROM qualifications WHERE type_id=? AND worker_id=? "
                    "AND status='Granted'",
                    (row["id"], worker_id),
                ).fetchone()
                last = db.execute(
                    "SELECT status, reason, submitted FROM qualification_requests WHERE type_id=? "
                    "AND worker_id=? ORDER BY id DESC LIMIT 1",
                    (row["id"], worker_id),
                ).fetchone()
                view["value"] = None if granted is None else granted["value"]
                view["pending"] = bool(last and last["status"] == "Pending")
                view["rejected"] = (
                    (last["reason"] or "no reason given")
                    if last and last["status"] == "Rejected"
                    else ""
                )
                # seconds until a new request is allowed: None now, -1 never
                view["retry_in"] = None
                if last is not None:
                    delay = self._qualification_type_row(db, row["id"])["retry_delay"]
                    if delay is None:
                        view["retry_in"] = -1
                    elif last["submitted"] + delay > now:
                        view["retry_in"] = last["submitted"] + delay - now
                out.append(view)
        return out

    def qualification_test(self, *, type_id: str) -> dict:
        with self._tx() as db:
            return self._qualification_type_view(db, type_id)

    def qualification_request(
        self, *, worker_id: str, type_id: str, answers: dict[str, str] | None = None
    ) -> dict:
        """Worker ``worker_id`` requests qualification ``type_id`` (with the test's
        ``answers`` when it has a test). Returns ``{"status": "Granted"|"Pending", ...}``."""
        with self._tx() as db:
            now = self._now(db)
            self._worker_row(db, worker_id)
            qtype = self._qualification_type_row(db, type_id)
            if qtype["status"] != "Active":
                raise ApiError(f"Qualification type {type_id} is not active.")
            last = db.execute(
                "SELECT * FROM qualification_requests WHERE type_id=? AND worker_id=? "
                "ORDER BY id DESC LIMIT 1",
                (type_id, worker_id),
            ).fetchone()
            if last is not None and last["status"] == "Pending":
                raise ApiError(f"Your request for {qtype['name']} is already waiting.")
            if last is not None and (
                qtype["retry_delay"] is None or now < last["submitted"] + qtype["retry_delay"]
            ):
                raise ApiError(
                    f"You already requested {qtype['name']}; this type "
                    + (
                        "does not allow retries."
                        if qtype["retry_delay"] is None
                        else f"allows a retry {qtype['retry_delay']} s after a request."
                    )
                )
            if qtype["test"] and answers is None:
                raise ApiError(f"{qtype['name']} has a test; answer it to request it.")
            if qtype["auto_granted"] or (qtype["test"] and qtype["answer_key"]):
                value = (
                    qtype["auto_granted_value"]
                    if qtype["auto_granted"]
                    else answer_key_score(qtype["answer_key"], answers or {})
                )
                status = "Accepted"
                self._grant(db, type_id, worker_id, value, now)
            else:
                status = "Pending"
            db.execute(
                "INSERT INTO qualification_requests "
                "(type_id, worker_id, test, answer, submitted, status, decided) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    type_id,
                    worker_id,
                    qtype["test"],
                    None if answers is None else json.dumps(answers, sort_keys=True),
                    now,
                    status,
                    now if status == "Accepted" else None,
                ),
            )
            return {"status": "Granted" if status == "Accepted" else "Pending"}

    @staticmethod
    def _grant(db, type_id: str, worker_id: str, value: int, now: float) -> None:
        db.execute(
            "INSERT OR REPLACE INTO qualifications (type_id, worker_id, value, granted, status) "
            "VALUES (?, ?, ?, ?, 'Granted')",
            (type_id, worker_id, value, now),
        )

    def assignments_for_worker(self, worker_id: str) -> list[dict]:
        """The worker's submitted work, newest first: HIT title, status, the requester's
        feedback and the bonuses paid on it."""
        with self._tx() as db:
            self._settle(db, self._now(db))
            rows = db.execute(
                "SELECT a.id, a.status, a.feedback, t.title, t.reward, "
                "(SELECT group_concat(b.amount, ', ') FROM bonuses b WHERE b.assignment_id = a.id)"
                " AS bonuses FROM assignments a JOIN hits h ON h.id = a.hit_id "
                "JOIN hit_types t ON t.id = h.hit_type_id "
                "WHERE a.worker_id=? AND a.status IN ('Submitted', 'Approved', 'Rejected') "
                "ORDER BY a.submit_time DESC",
                (worker_id,),
            ).fetchall()
        return [dict(r) for r in rows]

    def worker_messages(self, worker_id: str) -> list[dict]:
        """The requester's NotifyWorkers messages to ``worker_id``, newest first."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT subject, message, created FROM notifications WHERE worker_id=? "
                "ORDER BY id DESC",
                (worker_id,),
            ).fetchall()
        return [dict(r) for r in rows]

    def worker_block(self, worker_id: str) -> str:
        """The reason this worker is blocked, or an empty string."""
        with self._tx() as db:
            row = db.execute("SELECT reason FROM blocks WHERE worker_id=?", (worker_id,)).fetchone()
        return "" if row is None else row["reason"]

    def hit_question(self, hit_id: str):
        """The HIT's parsed question (:class:`mturk.local.questions.Question`)."""
        with self._tx() as db:
            return question_parse(self._hit_row(db, hit_id)["question"])
