"""Shared fixtures: service availability, per-test media folder, synthetic archives, Chromium.

Outside CI, tests that need PostgreSQL, Redis or Chromium skip with a message naming what is
missing; with ``REQUIRE_SERVICES=1`` (set by ``.ci/run``) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

import hypothesis
import pytest
import torch

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"

# CI explores the same examples every run (a red CI must be reproducible); elsewhere they vary.
hypothesis.settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI") == "true":
    hypothesis.settings.load_profile("ci")
ROOT = Path(__file__).resolve().parent.parent


# Compute backends of the numeric code: numpy, torch on the CPU, torch on CUDA where present.
BACKENDS = [
    "numpy",
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    ),
]


def service_missing(service: str, detail: str) -> None:
    message = f"{service} is not available ({detail})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(message)


def celery_worker_argv(*options: str) -> list[str]:
    """``python -m celery -A studyplatform worker`` with ``options``, without gossip or mingle,
    logging at INFO."""
    return [
        *(sys.executable, "-m", "celery", "-A", "studyplatform", "worker"),
        *("--without-gossip", "--without-mingle", "--loglevel", "INFO"),
        *options,
    ]


def worker_env(redis_url: str, **extra: str) -> dict[str, str]:
    """Environment for a Celery worker or ``manage.py`` subprocess of a test: the test settings,
    this process's test database, ``redis_url`` as broker and result backend, plus ``extra``."""
    from django.db import connection

    conf = connection.settings_dict
    if connection.vendor == "postgresql":
        user = conf["USER"] or "postgres"
        auth = user + (f":{conf['PASSWORD']}" if conf["PASSWORD"] else "")
        host = f"{conf['HOST'] or '127.0.0.1'}:{conf['PORT'] or 5432}"
        database_url = f"postgres://{auth}@{host}/{conf['NAME']}"
    else:
        database_url = f"sqlite:///{conf['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "studyplatform.settings.test",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        **extra,
    }


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def redis_url() -> str:
    """URL of a reachable Redis database for tests (``TEST_REDIS_URL``), flushed before use."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
    except redis.RedisError as exc:
        service_missing("Redis", f"{url}: {exc}")
    client.flushdb()
    return url


@pytest.fixture
def postgres(db):
    from django.db import connection

    if connection.vendor != "postgresql":
        service_missing("PostgreSQL", "DATABASE_URL is not a postgres:// URL")
    return connection


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        service_missing("Chromium", f"{path} not found; apt-get install chromium")
    return path


@pytest.fixture
def browser_page(chromium_path):
    """A Playwright page in headless Debian Chromium (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def synthetic_archive_2000(tmp_path_factory) -> Path:
    """A 2,000-image synthetic archive (seed 7), made once per session; returns its folder."""
    from retrieval.synthetic import generate_archive

    folder = tmp_path_factory.mktemp("synthetic-2000")
    generate_archive(folder, n_images=2000, seed=7)
    return folder


@pytest.fixture(scope="session")
def synthetic_archive_small(tmp_path_factory) -> Path:
    """A 120-image synthetic archive (seed 3); returns its folder."""
    from retrieval.synthetic import generate_archive

    folder = tmp_path_factory.mktemp("synthetic-120")
    generate_archive(folder, n_images=120, seed=3)
    return folder


@pytest.fixture
def small_archive(db, synthetic_archive_small):
    """The 120-image synthetic archive imported as "synth"."""
    from retrieval.services import archive_import_coco

    return archive_import_coco(
        archive_name="synth",
        instances_path=synthetic_archive_small / "instances.json",
        image_dir=synthetic_archive_small / "images",
    ).archive
