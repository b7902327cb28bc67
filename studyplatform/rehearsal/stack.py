"""The production stack on loopback, started and supervised for a rehearsal.

Processes (each one Popen, its output in ``<folder>/logs/<name>.log``): a private Redis server
(broker, results, cache), moto's S3 server (media through django-storages), the local MTurk
endpoint, gunicorn with the production settings, Celery ``default`` and ``gpu`` workers and
beat. PostgreSQL is the one already running at ``DATABASE_URL``'s host; its database is made
afresh. Only 127.0.0.1 is used, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

ROOT = Path(settings.BASE_DIR)


class StackError(RuntimeError):
    """A process of the stack did not come up, or a step of the rehearsal failed."""


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(port: int, *, timeout: float, name: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return
        if process is not None and process.poll() is not None:
            raise StackError(f"{name} exited with {process.returncode} before listening on {port}")
        time.sleep(0.2)
    raise StackError(f"{name} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


@dataclass
class Ports:
    """Loopback ports: ``web`` and the next four (Redis, S3, MTurk, constant-JSON web)."""

    web: int = 18000

    @property
    def redis(self) -> int:
        return self.web + 1

    @property
    def s3(self) -> int:
        return self.web + 2

    @property
    def mturk(self) -> int:
        return self.web + 3


def database_url_for(base_url: str, name: str) -> str:
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def database_recreate(database_url: str) -> None:
    """Drop and create the database of ``database_url`` (connecting to ``postgres``)."""
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise StackError(f"database name {name!r}: letters, digits and _ only")
    admin = database_url_for(database_url, "postgres")
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


@dataclass
class Stack:
    """The processes of one rehearsal and the environment they share."""

    folder: Path
    database_url: str
    ports: Ports = field(default_factory=Ports)
    web_workers: int = 4
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    log: callable = print

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "logs").mkdir(exist_ok=True)
        self.mturk_state = self.folder / "mturk-local.sqlite3"
        redis = f"redis://127.0.0.1:{self.ports.redis}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CELERY_"))},
            "DJANGO_SETTINGS_MODULE": "studyplatform.settings.production",
            # A throw-away key: the rehearsal's database is dropped at the next run.
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": f"{redis}/6",
            "CELERY_BROKER_URL": f"{redis}/4",
            "CELERY_RESULT_BACKEND": f"{redis}/5",
            "STUDYPLATFORM_DATA_DIR": str(self.folder / "data"),
            "STATIC_ROOT": str(self.folder / "static"),
            "AWS_STORAGE_BUCKET_NAME": "rehearsal-media",
            "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{self.ports.s3}",
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_ACCESS_KEY_ID": "rehearsal",
            "AWS_SECRET_ACCESS_KEY": "rehearsal-secret",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(self.folder / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.folder / "no-aws-credentials"),
            "MTURK_ENVIRONMENT": "local",
            "MTURK_LOCAL_URL": self.mturk_url,
            "PUBLIC_BASE_URL": self.base_url,
            "HIT_EXTRA_SUBMIT_ORIGINS": self.mturk_url,
            "HIT_EXTRA_FRAME_ANCESTORS": self.mturk_url,
            "OUTBOX_SWEEP_SECONDS": "10",
            "OUTBOX_REPUBLISH_SECONDS": "30",
            "MTURK_SYNC_SECONDS": "3600",
            "CELERY_VISIBILITY_TIMEOUT": "120",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.web}"

    @property
    def mturk_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.mturk}"

    # --- processes ------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        handle = open(self.folder / "logs" / f"{name}.log", "ab")  # noqa: SIM115 (kept by Popen)
        process = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.processes[name] = process
        return process

    def manage(self, *args: str, timeout: float) -> str:
        """``manage.py <args>`` under the stack's environment; its output (raises on failure)."""
        try:
            done = subprocess.run(
                [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, timeout=timeout,
                capture_output=True, text=True,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"manage.py {' '.join(args)} ran past {timeout:.0f} s") from exc
        if done.returncode != 0:
            raise StackError(
                f"manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}"
            )
        return done.stdout

    def start_redis(self) -> None:
        process = self._spawn("redis", ["redis-server", "--port", str(self.ports.redis),
                                        "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                        "--dir", str(self.folder)])  # fmt: skip
        wait_for_port(self.ports.redis, timeout=15, name="redis-server", process=process)

    def start_s3(self) -> None:
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.ports.s3)]
        process = self._spawn("s3", argv)
        wait_for_port(self.ports.s3, timeout=60, name="moto S3 server", process=process)
        import boto3

        boto3.client(
            "s3", endpoint_url=self.env["AWS_S3_ENDPOINT_URL"], region_name="us-east-1",
            aws_access_key_id="rehearsal", aws_secret_access_key="rehearsal-secret",
        ).create_bucket(Bucket=self.env["AWS_STORAGE_BUCKET_NAME"])  # fmt: skip

    def start_mturk(self) -> None:
        argv = [sys.executable, "-m", "mturk.local", "--port", str(self.ports.mturk),
                "--state", str(self.mturk_state)]  # fmt: skip
        process = self._spawn("mturk", argv)
        wait_for_port(self.ports.mturk, timeout=30, name="local MTurk endpoint", process=process)

    def start_web(self) -> None:
        argv = [sys.executable, "-m", "gunicorn", "studyplatform.wsgi",
                "--bind", f"127.0.0.1:{self.ports.web}", "--workers", str(self.web_workers),
                "--timeout", "60", "--graceful-timeout", "10", "--preload",
                "--access-logfile", "-", "--access-logformat",
                '%(t)s %(s)s %(m)s %(U)s %(L)s', "--pid", str(self.folder / "gunicorn.pid")]  # fmt: skip
        process = self._spawn("web", argv)
        wait_for_port(self.ports.web, timeout=120, name="gunicorn", process=process)

    def start_worker(self, queue: str) -> None:
        name = "gpu" if queue == "gpu" else "worker"
        argv = [sys.executable, "-m", "celery", "-A", "studyplatform", "worker", "--queues", queue,
                "--hostname", f"{name}@rehearsal", "--without-gossip", "--without-mingle",
                "--loglevel", "INFO", "--concurrency", "1" if queue == "gpu" else "2"]  # fmt: skip
        if queue == "gpu":
            argv += ["--prefetch-multiplier", "1"]
        self._spawn(name, argv)

    def start_beat(self) -> None:
        argv = [sys.executable, "-m", "celery", "-A", "studyplatform", "beat", "--loglevel",
                "INFO", "--schedule", str(self.folder / "celerybeat-schedule")]  # fmt: skip
        self._spawn("beat", argv)

    def up(self) -> None:
        """Everything, in dependency order; the database migrated and static files collected."""
        database_recreate(self.database_url)
        self.start_redis()
        self.start_s3()
        self.start_mturk()
        self.manage("migrate", "--noinput", "-v", "0", timeout=600)
        self.manage("collectstatic", "--noinput", "-v", "0", timeout=600)
        self.start_web()
        self.start_worker("default")
        self.start_worker("gpu")
        self.start_beat()

    def supervise(self) -> list[str]:
        """Restart the Celery processes and gunicorn when they died (as a process manager
        would); the names restarted."""
        restarted = []
        starters = {"worker": lambda: self.start_worker("default"),
                    "gpu": lambda: self.start_worker("gpu"), "beat": self.start_beat}  # fmt: skip
        for name, start in starters.items():
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                start()
                restarted.append(name)
        return restarted

    def children(self, name: str) -> list[int]:
        """Process ids of the direct children of stack process ``name`` (from /proc)."""
        parent = self.processes[name].pid
        path = Path(f"/proc/{parent}/task/{parent}/children")
        return [int(p) for p in path.read_text().split()] if path.exists() else []

    def down(self) -> None:
        """Stop every process the stack started, with its children (each runs in a session of
        its own): TERM, newest first, then KILL what is left after 15 s."""
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
