"""State and plumbing of the local MTurk endpoint, kept in one SQLite file.

Every operation runs in its own ``BEGIN IMMEDIATE`` transaction on its own connection, so
concurrent requests from the threaded server are serialised by SQLite's write lock: a request
is applied whole or not at all, and ``MaxAssignments`` and ``UniqueRequestToken`` stay exact
under any number of clients. Times are seconds since the epoch (``time.time()`` plus an
adjustable offset, so tests can move the clock). State files of earlier versions gain the new
columns on open.

The requester operations live by sub-domain in :mod:`~mturk.local.hits`,
:mod:`~mturk.local.assignments`, :mod:`~mturk.local.qualifications`, :mod:`~mturk.local.workers`
and :mod:`~mturk.local.notifications` (methods ``op_<Operation>``); the simulated workers' side in
:mod:`~mturk.local.worker_side`; the response shapes in :mod:`~mturk.local.views`. Every request
is first checked against botocore's service model (:mod:`~mturk.local.validation`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal

from mturk.local.assignments import AssignmentsApi
from mturk.local.common import TOKEN_LIFETIME_SECONDS, WORKER_ID, ApiError, fee, money
from mturk.local.hits import HitsApi
from mturk.local.notifications import NotificationsApi
from mturk.local.qualifications import QualificationsApi
from mturk.local.validation import request_validate
from mturk.local.views import Views
from mturk.local.worker_side import WorkerSide
from mturk.local.workers import WorkersApi

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
    max_assignments INTEGER NOT NULL CHECK (max_assignments >= 1), question TEXT,
    annotation TEXT, created REAL, expiration REAL);
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
CREATE TABLE IF NOT EXISTS qualification_requests (
    id INTEGER PRIMARY KEY, type_id TEXT NOT NULL, worker_id TEXT NOT NULL, test TEXT,
    answer TEXT, submitted REAL NOT NULL, status TEXT NOT NULL DEFAULT 'Pending',
    reason TEXT, decided REAL);
CREATE TABLE IF NOT EXISTS bonuses (
    id INTEGER PRIMARY KEY, worker_id TEXT, assignment_id TEXT, amount TEXT, reason TEXT,
    token TEXT, created REAL);
CREATE TABLE IF NOT EXISTS tokens (
    operation TEXT NOT NULL, token TEXT NOT NULL, result TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (operation, token));
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY, worker_id TEXT, subject TEXT, message TEXT, created REAL);
CREATE TABLE IF NOT EXISTS blocks (worker_id TEXT PRIMARY KEY, reason TEXT);
CREATE TABLE IF NOT EXISTS notification_settings (
    hit_type_id TEXT PRIMARY KEY, spec TEXT, active INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, destination TEXT, payload TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS faults (operation TEXT PRIMARY KEY, kind TEXT, remaining INTEGER);
CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, operation TEXT, at REAL);
"""
# Columns added after the first version; ``ALTER TABLE`` adds them to older state files.
ADDED_COLUMNS = {
    "hits": (
        "review_status TEXT NOT NULL DEFAULT 'NotReviewed'",
        "reviewing INTEGER NOT NULL DEFAULT 0",
        "deleted REAL",
        "assignment_policy TEXT",
        "hit_policy TEXT",
    ),
    "qualification_types": (
        "keywords TEXT",
        "retry_delay INTEGER",
        "test TEXT",
        "answer_key TEXT",
        "test_duration INTEGER",
        "auto_granted INTEGER NOT NULL DEFAULT 0",
        "auto_granted_value INTEGER NOT NULL DEFAULT 1",
    ),
    "qualifications": ("status TEXT NOT NULL DEFAULT 'Granted'",),
}


class Store(
    HitsApi, AssignmentsApi, QualificationsApi, WorkersApi, NotificationsApi, WorkerSide, Views
):
    """The endpoint's state in the SQLite file ``path`` (created on first use)."""

    def __init__(self, path: str, *, balance: str = "10000.00") -> None:
        self.path = str(path)
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            for table, columns in ADDED_COLUMNS.items():
                have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                for column in columns:
                    if column.split()[0] not in have:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
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
        late = db.execute(
            "SELECT id, hit_id FROM assignments WHERE status='Accepted' AND deadline < ?", (now,)
        ).fetchall()
        for row in late:
            db.execute("UPDATE assignments SET status='Abandoned' WHERE id=?", (row["id"],))
            self._event(db, now, row["hit_id"], "AssignmentAbandoned", row["id"])
        due = db.execute(
            "SELECT a.id, a.hit_id, t.reward, h.max_assignments FROM assignments a "
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
            self._event(db, now, row["hit_id"], "AssignmentApproved", row["id"])

    def _event(self, db, now: float, hit_id: str, event: str, assignment_id: str = "") -> None:
        """Record the notification MTurk would send for ``event`` on ``hit_id`` when its HIT
        type's notification settings are active and ask for it (nothing is sent)."""
        row = db.execute(
            "SELECT s.spec, h.hit_type_id FROM hits h JOIN notification_settings s "
            "ON s.hit_type_id = h.hit_type_id WHERE h.id=? AND s.active=1",
            (hit_id,),
        ).fetchone()
        if row is None:
            return
        spec = json.loads(row["spec"])
        if event not in spec["EventTypes"]:
            return
        self._outbox(db, now, spec, event, row["hit_type_id"], hit_id, assignment_id)

    def _outbox(self, db, now, spec: dict, event: str, hit_type_id, hit_id, assignment_id) -> None:
        message = {
            "Events": [
                {
                    "EventType": event,
                    "EventTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                    "HITTypeId": hit_type_id,
                    "HITId": hit_id,
                    "AssignmentId": assignment_id,
                }
            ],
            "EventDocVersion": spec["Version"],
        }
        db.execute(
            "INSERT INTO outbox (kind, destination, payload, created) VALUES (?, ?, ?, ?)",
            (spec["Transport"], spec["Destination"], json.dumps(message), now),
        )

    def _page(self, operation: str, params: dict, items: list) -> tuple[list, dict]:
        """One page of ``items`` and the answer's ``NumResults``/``NextToken``. The token is
        opaque and bound to the operation and its filters: another call's token is refused."""
        size = params.get("MaxResults") or 10
        scope = {k: v for k, v in params.items() if k not in {"NextToken", "MaxResults"}}
        digest = hashlib.sha256(
            json.dumps([operation, scope], sort_keys=True).encode()
        ).hexdigest()[:16]
        start = 0
        if params.get("NextToken"):
            try:
                raw = base64.urlsafe_b64decode(params["NextToken"].encode())
                token_digest, start = json.loads(raw)
                if token_digest != digest or not isinstance(start, int) or start < 0:
                    raise ValueError
            except ValueError:
                raise ApiError(
                    f"NextToken {params['NextToken']!r} is not a token this call returned.",
                    "AWS.MechanicalTurk.InvalidNextToken",
                ) from None
        page = items[start : start + size]
        extra: dict = {"NumResults": len(page)}
        if start + size < len(items):
            token = json.dumps([digest, start + size]).encode()
            extra["NextToken"] = base64.urlsafe_b64encode(token).decode()
        return page, extra

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

    def dispatch(self, operation: str, params: dict) -> dict:
        """Run requester ``operation`` on ``params`` (the request's JSON) in one transaction;
        the answer's JSON, or :class:`ApiError`."""
        handler = getattr(self, f"op_{operation}", None)
        if handler is None:
            raise ApiError(
                f"Operation {operation} is not supported by the local endpoint.",
                type_="UnknownOperationException",
            )
        request_validate(operation, params)
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

    def outbox(self) -> list[dict]:
        """What the endpoint would have sent to SQS, SNS, e-mail or S3, oldest first."""
        with self._tx() as db:
            rows = db.execute("SELECT * FROM outbox ORDER BY id").fetchall()
        return [dict(r, payload=json.loads(r["payload"])) for r in rows]
