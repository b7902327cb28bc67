"""State and rules of the local MTurk endpoint, kept in one SQLite file.

Every operation runs in its own ``BEGIN IMMEDIATE`` transaction on its own connection, so
concurrent requests from the threaded server are serialised by SQLite's write lock. Times are
seconds since the epoch (``time.time()`` plus an adjustable offset, so tests can move the clock).

MTurk's rules enforced here: a worker holds at most one live assignment per HIT and a HIT never
has more live assignments than ``MaxAssignments``; qualification requirements are checked at
accept (and preview/discovery when ``ActionsGuarded`` says so) against the simulated worker's
locale, approved-HIT count, approval rate, Masters flag and granted qualifications;
``UniqueRequestToken`` repeats within 24 h fail with the documented errors; only a Submitted
assignment can be approved or rejected (a Rejected one can be approved with
``OverrideRejection``); a bonus needs an assignment of that worker; a HIT is assignable only
before its expiration; extending a HIT from fewer than 10 to 10 or more assignments is refused.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from mturk.local.api import RequesterApi
from mturk.local.common import (
    APPROVAL_RATE_QUALIFICATION,
    APPROVED_COUNT_QUALIFICATION,
    LISTED_STATUSES,
    LOCALE_QUALIFICATION,
    MASTERS_QUALIFICATIONS,
    TOKEN_LIFETIME_SECONDS,
    WORKER_ID,
    ApiError,
    answer_xml,
    fee,
    money,
    new_id,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY, country TEXT NOT NULL, subdivision TEXT NOT NULL DEFAULT '',
    approved_count INTEGER NOT NULL, approval_rate INTEGER NOT NULL, masters INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS hit_types (
    id TEXT PRIMARY KEY, params TEXT NOT NULL UNIQUE, title TEXT, description TEXT,
    keywords TEXT, reward TEXT, duration INTEGER, auto_approval_delay INTEGER,
    qualifications TEXT, created REAL);
CREATE TABLE IF NOT EXISTS hits (
    id TEXT PRIMARY KEY, hit_type_id TEXT NOT NULL REFERENCES hit_types(id),
    max_assignments INTEGER NOT NULL, question TEXT, annotation TEXT, created REAL,
    expiration REAL);
CREATE TABLE IF NOT EXISTS assignments (
    id TEXT PRIMARY KEY, hit_id TEXT NOT NULL REFERENCES hits(id), worker_id TEXT NOT NULL,
    status TEXT NOT NULL, accept_time REAL, submit_time REAL, approval_time REAL,
    rejection_time REAL, deadline REAL, auto_approval_time REAL, answer TEXT,
    feedback TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS assignment_live_once ON assignments(hit_id, worker_id)
    WHERE status IN ('Accepted', 'Submitted', 'Approved', 'Rejected');
CREATE TABLE IF NOT EXISTS qualification_types (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT, status TEXT,
    created REAL);
CREATE TABLE IF NOT EXISTS qualifications (
    type_id TEXT NOT NULL, worker_id TEXT NOT NULL, value INTEGER, granted REAL,
    PRIMARY KEY (type_id, worker_id));
CREATE TABLE IF NOT EXISTS bonuses (
    id INTEGER PRIMARY KEY, worker_id TEXT, assignment_id TEXT, amount TEXT, reason TEXT,
    token TEXT, created REAL);
CREATE TABLE IF NOT EXISTS tokens (
    operation TEXT NOT NULL, token TEXT NOT NULL, result TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (operation, token));
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY, worker_id TEXT, subject TEXT, message TEXT, created REAL);
CREATE TABLE IF NOT EXISTS blocks (worker_id TEXT PRIMARY KEY, reason TEXT);
CREATE TABLE IF NOT EXISTS faults (operation TEXT PRIMARY KEY, kind TEXT, remaining INTEGER);
CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, operation TEXT, at REAL);
"""


class Store(RequesterApi):
    """The endpoint's state in the SQLite file ``path`` (created on first use)."""

    def __init__(self, path: str, *, balance: str = "10000.00") -> None:
        self.path = str(path)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        finally:
            db.close()
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('balance', ?), ('clock_offset', '0')",
                (balance,),
            )

    # --- plumbing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            # WAL with NORMAL sync: a commit is atomic and survives a crash of the process.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    def _now(self, db: sqlite3.Connection) -> float:
        offset = db.execute("SELECT value FROM meta WHERE key='clock_offset'").fetchone()[0]
        return time.time() + float(offset)

    def now(self) -> float:
        with self._tx() as db:
            return self._now(db)

    def advance_clock(self, seconds: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE meta SET value = CAST(CAST(value AS REAL) + ? AS TEXT) "
                "WHERE key='clock_offset'",
                (float(seconds),),
            )

    def _settle(self, db: sqlite3.Connection, now: float) -> None:
        """Apply what time does: accepted past the deadline -> Abandoned; submitted past the
        auto-approval time -> Approved (paid)."""
        db.execute(
            "UPDATE assignments SET status='Abandoned' WHERE status='Accepted' AND deadline < ?",
            (now,),
        )
        due = db.execute(
            "SELECT a.id, t.reward, h.max_assignments FROM assignments a "
            "JOIN hits h ON h.id = a.hit_id JOIN hit_types t ON t.id = h.hit_type_id "
            "WHERE a.status='Submitted' AND a.auto_approval_time < ?",
            (now,),
        ).fetchall()
        for row in due:
            self._pay(db, Decimal(row["reward"]), row["max_assignments"])
            db.execute(
                "UPDATE assignments SET status='Approved', approval_time=? WHERE id=?",
                (now, row["id"]),
            )

    def _pay(self, db: sqlite3.Connection, amount: Decimal, max_assignments: int) -> None:
        balance = Decimal(db.execute("SELECT value FROM meta WHERE key='balance'").fetchone()[0])
        total = amount + fee(amount, max_assignments)
        if total > balance:
            raise ApiError(
                f"Insufficient funds: {total} needed, {balance} available.",
                "AWS.MechanicalTurk.InsufficientFunds",
            )
        db.execute("UPDATE meta SET value=? WHERE key='balance'", (str(balance - total),))

    def _token_seen(self, db: sqlite3.Connection, operation: str, token: str | None, now: float):
        if not token:
            return None
        row = db.execute(
            "SELECT result FROM tokens WHERE operation=? AND token=? AND created > ?",
            (operation, token, now - TOKEN_LIFETIME_SECONDS),
        ).fetchone()
        return None if row is None else row["result"]

    def _token_save(self, db, operation: str, token: str | None, result: str, now: float) -> None:
        if token:
            db.execute(
                "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?)", (operation, token, result, now)
            )

    # --- fault injection and simulated workers (control API) --------------------------------
    def fault_set(self, *, operation: str, kind: str, count: int) -> None:
        if kind not in {"throttle", "fault", "drop", "error"}:
            raise ApiError(f"Unknown fault kind {kind!r}: throttle, fault, drop or error.")
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO faults VALUES (?, ?, ?)", (operation, kind, count))

    def fault_take(self, operation: str) -> str | None:
        """The fault to apply to this call of ``operation`` (``None`` for none); counts it."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO calls (operation, at) VALUES (?, ?)", (operation, self._now(db))
            )
            for name in (operation, "*"):
                row = db.execute(
                    "SELECT kind, remaining FROM faults WHERE operation=? AND remaining > 0",
                    (name,),
                ).fetchone()
                if row:
                    db.execute(
                        "UPDATE faults SET remaining = remaining - 1 WHERE operation=?", (name,)
                    )
                    return row["kind"]
        return None

    def worker_add(
        self,
        *,
        worker_id: str,
        country: str = "US",
        subdivision: str = "",
        approved_count: int = 5000,
        approval_rate: int = 99,
        masters: bool = False,
    ) -> dict:
        if not WORKER_ID.match(worker_id or ""):
            raise ApiError(f"Worker id {worker_id!r} must match ^A[A-Z0-9]+$.")
        if not (len(country) == 2 and country.isalpha() and country.isupper()):
            raise ApiError(f"Country {country!r} must be a two-letter ISO code such as US.")
        if not 0 <= int(approval_rate) <= 100 or int(approved_count) < 0:
            raise ApiError("approval_rate must be 0..100 and approved_count >= 0.")
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO workers VALUES (?, ?, ?, ?, ?, ?)",
                (
                    worker_id,
                    country,
                    subdivision,
                    int(approved_count),
                    int(approval_rate),
                    int(masters),
                ),
            )
        return self.worker_get(worker_id)

    def worker_get(self, worker_id: str) -> dict:
        with self._tx() as db:
            row = db.execute("SELECT * FROM workers WHERE id=?", (worker_id,)).fetchone()
        if row is None:
            raise ApiError(f"No simulated worker {worker_id!r}.")
        return dict(row)

    def workers(self) -> list[dict]:
        with self._tx() as db:
            return [dict(r) for r in db.execute("SELECT * FROM workers ORDER BY id")]

    def counts(self) -> dict:
        """Row counts and the balance, for tests and the dry-run summary."""
        with self._tx() as db:
            self._settle(db, self._now(db))
            out = {
                table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("hit_types", "hits", "assignments", "bonuses", "notifications")
            }
            out["balance"] = db.execute("SELECT value FROM meta WHERE key='balance'").fetchone()[0]
            out["calls"] = dict(
                db.execute("SELECT operation, COUNT(*) FROM calls GROUP BY operation").fetchall()
            )
        return out

    def balance_set(self, amount: str) -> None:
        money(amount, "balance")
        with self._tx() as db:
            db.execute("UPDATE meta SET value=? WHERE key='balance'", (amount,))

    # --- the worker's side ------------------------------------------------------------------
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
                        "SELECT value FROM qualifications WHERE type_id=? AND worker_id=?",
                        (type_id, worker["id"]),
                    ).fetchone()
                    value = None if row is None else row["value"]
                ok = self._compare(value, comparator, req.get("IntegerValues", []))
            if not ok:
                return f"requirement {type_id} {comparator} {req.get('IntegerValues') or req.get('LocaleValues') or ''} not met"
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

    def _hit_row(self, db, hit_id: str) -> sqlite3.Row:
        row = db.execute(
            "SELECT h.*, t.title, t.description, t.keywords, t.reward, t.duration, "
            "t.auto_approval_delay, t.qualifications FROM hits h "
            "JOIN hit_types t ON t.id = h.hit_type_id WHERE h.id=?",
            (hit_id,),
        ).fetchone()
        if row is None:
            raise ApiError(f"Hit {hit_id} does not exist.", "AWS.MechanicalTurk.HitDoesNotExist")
        return row

    def _hit_counts(self, db, hit_id: str) -> dict:
        rows = db.execute(
            "SELECT status, COUNT(*) AS n FROM assignments WHERE hit_id=? GROUP BY status",
            (hit_id,),
        ).fetchall()
        return {r["status"]: r["n"] for r in rows}

    def hits_for_worker(self, worker_id: str) -> list[dict]:
        """HITs a worker can see: assignable, not guarded from discovery, with whether they
        may accept and the reason when not."""
        with self._tx() as db:
            now = self._now(db)
            self._settle(db, now)
            worker = self._worker_row(db, worker_id)
            out = []
            for row in db.execute("SELECT id FROM hits ORDER BY created").fetchall():
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
            return self._assignment_view(db, assignment_id)

    def assignment_return(self, *, assignment_id: str) -> dict:
        with self._tx() as db:
            row = db.execute("SELECT * FROM assignments WHERE id=?", (assignment_id,)).fetchone()
            if row is None or row["status"] != "Accepted":
                raise ApiError(
                    f"Assignment {assignment_id} is not accepted; it cannot be returned."
                )
            db.execute("UPDATE assignments SET status='Returned' WHERE id=?", (assignment_id,))
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
            return self._assignment_view(db, assignment_id)

    def hit_get(self, hit_id: str) -> dict:
        with self._tx() as db:
            return self._hit_view(db, hit_id, self._now(db))

    def assignment_get_local(self, assignment_id: str) -> dict:
        with self._tx() as db:
            return self._assignment_view(db, assignment_id, any_status=True)

    # --- views ------------------------------------------------------------------------------
    def _hit_view(self, db, hit_id: str, now: float) -> dict:
        hit = self._hit_row(db, hit_id)
        counts = self._hit_counts(db, hit_id)
        pending = counts.get("Accepted", 0)
        completed = sum(counts.get(s, 0) for s in LISTED_STATUSES)
        available = max(hit["max_assignments"] - pending - completed, 0)
        if hit["expiration"] > now and available > 0:
            status = "Assignable"
        elif pending > 0 and hit["expiration"] > now:
            status = "Unassignable"
        else:
            status = "Reviewable"
        return {
            "HITId": hit["id"],
            "HITTypeId": hit["hit_type_id"],
            "HITGroupId": hit["hit_type_id"],
            "CreationTime": hit["created"],
            "Title": hit["title"],
            "Description": hit["description"],
            "Question": hit["question"],
            "Keywords": hit["keywords"],
            "HITStatus": status,
            "MaxAssignments": hit["max_assignments"],
            "Reward": hit["reward"],
            "AutoApprovalDelayInSeconds": hit["auto_approval_delay"],
            "Expiration": hit["expiration"],
            "AssignmentDurationInSeconds": hit["duration"],
            "RequesterAnnotation": hit["annotation"] or "",
            "QualificationRequirements": json.loads(hit["qualifications"]),
            "HITReviewStatus": "NotReviewed",
            "NumberOfAssignmentsPending": pending,
            "NumberOfAssignmentsAvailable": available,
            "NumberOfAssignmentsCompleted": completed,
        }

    def _assignment_view(self, db, assignment_id: str, *, any_status: bool = True) -> dict:
        row = db.execute("SELECT * FROM assignments WHERE id=?", (assignment_id,)).fetchone()
        if row is None or (not any_status and row["status"] not in LISTED_STATUSES):
            raise ApiError(
                f"Assignment {assignment_id} does not exist or is not submitted.",
                "AWS.MechanicalTurk.AssignmentDoesNotExist",
            )
        view = {
            "AssignmentId": row["id"],
            "WorkerId": row["worker_id"],
            "HITId": row["hit_id"],
            "AssignmentStatus": row["status"],
            "AcceptTime": row["accept_time"],
            "Deadline": row["deadline"],
        }
        for key, column in (
            ("SubmitTime", "submit_time"),
            ("AutoApprovalTime", "auto_approval_time"),
            ("ApprovalTime", "approval_time"),
            ("RejectionTime", "rejection_time"),
            ("RequesterFeedback", "feedback"),
        ):
            if row[column] is not None:
                view[key] = row[column]
        if row["answer"] is not None:
            view["Answer"] = answer_xml(json.loads(row["answer"]))
        return view

    def dispatch(self, operation: str, params: dict) -> dict:
        handler = getattr(self, f"op_{operation}", None)
        if handler is None:
            raise ApiError(
                f"Operation {operation} is not supported by the local endpoint.",
                type_="UnknownOperationException",
            )
        with self._tx() as db:
            now = self._now(db)
            self._settle(db, now)
            return handler(db, now, params)

    def notifications(self) -> list[dict]:
        with self._tx() as db:
            return [dict(r) for r in db.execute("SELECT * FROM notifications ORDER BY id")]

    def bonuses(self) -> list[dict]:
        with self._tx() as db:
            return [dict(r) for r in db.execute("SELECT * FROM bonuses ORDER BY id")]
