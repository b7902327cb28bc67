"""Faults injected into a running stack, each at a named time, each logged with its window.

The drive's schedule (seconds after the crowd starts) and the finish's MTurk faults are
:data:`DRIVE_SCHEDULE` and :data:`FINISH_FAULTS`; the gpu worker is killed during the
saliency precompute, when it has work. A fault's window (start, end, epoch seconds) is when it
may explain a failed request: only the database's makes 5xx acceptable.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .stack import Stack

# (seconds after the crowd starts, fault)
DRIVE_SCHEDULE: tuple[tuple[float, str], ...] = (
    (5.0, "mturk_grant_faults"),
    (15.0, "redis_restart"),
    (30.0, "postgres_connections_killed"),
    (45.0, "web_worker_killed"),
)
# Set on the endpoint just before sync, approve and bonus: (operation, kind, count).
FINISH_FAULTS: tuple[tuple[str, str, int], ...] = (
    ("ListAssignmentsForHIT", "throttle", 2),
    ("ApproveAssignment", "fault", 1),
    ("ApproveAssignment", "drop", 1),
    ("SendBonus", "drop", 1),
    ("SendBonus", "throttle", 1),
)
REDIS_DOWN_SECONDS = 5.0
# How long after connections are killed a request may still meet a dead one.
DATABASE_WINDOW_SECONDS = 5.0


@dataclass
class FaultLog:
    """What was injected: ``[{"fault", "at", "until", "detail"}]`` (epoch seconds)."""

    entries: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, fault: str, at: float, until: float, detail: str) -> None:
        with self._lock:
            self.entries.append({"fault": fault, "at": at, "until": until, "detail": detail})

    def database_windows(self) -> list[tuple[float, float]]:
        return [
            (e["at"], e["until"])
            for e in self.entries
            if e["fault"] == "postgres_connections_killed"
        ]


def mturk_fault(stack: Stack, operation: str, kind: str, count: int) -> None:
    body = json.dumps({"operation": operation, "kind": kind, "count": count}).encode()
    request = urllib.request.Request(f"{stack.mturk_url}/_control/faults", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


class Injector:
    """Runs the faults against ``stack`` and logs them in ``log``."""

    def __init__(self, stack: Stack, log: FaultLog) -> None:
        self.stack, self.log = stack, log

    def mturk_grant_faults(self) -> None:
        now = time.time()
        mturk_fault(self.stack, "AssociateQualificationWithWorker", "throttle", 4)
        mturk_fault(self.stack, "AssociateQualificationWithWorker", "fault", 2)
        self.log.add("mturk_grant_faults", now, now,
                     "AssociateQualificationWithWorker: 4 throttled, 2 ServiceFault")  # fmt: skip

    def mturk_finish_faults(self) -> None:
        now = time.time()
        for operation, kind, count in FINISH_FAULTS:
            mturk_fault(self.stack, operation, kind, count)
        detail = ", ".join(f"{op} {kind} x{n}" for op, kind, n in FINISH_FAULTS)
        self.log.add("mturk_finish_faults", now, now, detail)

    def redis_restart(self) -> None:
        started = time.time()
        process = self.stack.processes["redis"]
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        time.sleep(REDIS_DOWN_SECONDS)
        self.stack.start_redis()
        self.log.add("redis_restart", started, time.time(),
                     f"redis-server stopped (its queues lost: no persistence), down "
                     f"{REDIS_DOWN_SECONDS:.0f} s, started again")  # fmt: skip

    def postgres_connections_killed(self) -> None:
        import psycopg

        from .stack import database_url_for

        name = self.stack.database_url.rsplit("/", 1)[-1]
        started = time.time()
        admin = database_url_for(self.stack.database_url, "postgres")
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (name,),
            ).fetchall()  # fmt: skip
        self.log.add("postgres_connections_killed", started, started + DATABASE_WINDOW_SECONDS,
                     f"pg_terminate_backend on {len(rows)} connections of {name}")  # fmt: skip

    def _kill_tree(self, pid: int) -> None:
        path = Path(f"/proc/{pid}/task/{pid}/children")
        children = path.read_text().split() if path.exists() else []
        for child in children:
            os.kill(int(child), signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)

    def web_worker_killed(self) -> None:
        workers = self.stack.children("web")
        now = time.time()
        if not workers:
            self.log.add("web_worker_killed", now, now, "no gunicorn worker to kill")
            return
        os.kill(workers[0], signal.SIGKILL)
        self.log.add("web_worker_killed", now, now,
                     f"SIGKILL to gunicorn worker {workers[0]} (the master starts another)")  # fmt: skip

    def gpu_worker_killed(self) -> None:
        process = self.stack.processes["gpu"]
        now = time.time()
        self._kill_tree(process.pid)
        process.wait(timeout=30)
        self.stack.start_worker("gpu")
        self.log.add("gpu_worker_killed", now, time.time(),
                     f"SIGKILL to the gpu Celery worker {process.pid} and its pool; started again")  # fmt: skip

    def run(self, fault: str) -> None:
        try:
            getattr(self, fault)()
        except Exception as exc:  # a fault that could not be injected is reported, not fatal
            now = time.time()
            self.log.add(fault, now, now, f"NOT INJECTED: {exc!r}")


def schedule_run(injector: Injector, schedule, started: float, stop: threading.Event) -> None:
    """Inject each ``(offset, fault)`` at ``started + offset`` (monotonic) until ``stop``."""
    for offset, fault in schedule:
        wait = started + offset - time.monotonic()
        if wait > 0 and stop.wait(wait):
            return
        injector.run(fault)
