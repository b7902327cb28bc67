"""`make demo`: the embedded platform comes up and the printed admin login works in a browser."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def demo_command(port: int) -> list[str]:
    """`make demo` itself when this interpreter is the Makefile's venv, else the same command."""
    venv = Path(sys.prefix)
    if (venv / "bin" / ".installed").exists():
        return [
            "make",
            "--no-print-directory",
            "demo",
            f"VENV={venv}",
            f"PORT={port}",
            "DEMO_IMAGES=120",
        ]
    return [sys.executable, "manage.py", "demo", "--images", "120", "--port", str(port)]


def wait_for_credentials(
    process: subprocess.Popen, port: int, timeout: float = 900
) -> tuple[str, str]:
    """Read the demo's output until the server answers; return the password and the output."""
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True
    )
    reader.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            reader.join(timeout=5)
            pytest.fail("demo exited early:\n" + "".join(lines))
        found = re.search(r"password:\s+(\S+)", "".join(lines))
        if found:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/healthz", timeout=2
                ) as response:
                    if response.status == 200:
                        return found.group(1), "".join(lines)
            except OSError:
                pass
        time.sleep(0.5)
    pytest.fail("demo did not come up:\n" + "".join(lines))


def test_demo_serves_the_platform_and_the_printed_admin_login_works(tmp_path, browser_page):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "CELERY_", "REDIS_URL", "AWS_"))
    }
    env.update(
        STUDYPLATFORM_DATA_DIR=str(tmp_path / "data"),
        DJANGO_SETTINGS_MODULE="studyplatform.settings.dev",
    )
    process = subprocess.Popen(
        demo_command(port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        password, output = wait_for_credentials(process, port)
        page = browser_page
        page.goto(f"http://127.0.0.1:{port}/admin/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name")
        assert page.title() == "Archives, studies and analysis | studyplatform admin"

        page.goto(f"http://127.0.0.1:{port}/admin/retrieval/archive/")
        assert page.locator("td.field-n_images").first.inner_text() == "120"

        page.goto(f"http://127.0.0.1:{port}/admin/retrieval/image/")
        thumbnail = page.locator(".field-thumbnail img").first
        thumbnail.wait_for()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle()
        )

        page.goto(f"http://127.0.0.1:{port}/admin/retrieval/featureset/")
        assert page.locator("td.field-status").first.inner_text() == "Done"
        assert page.locator("td.field-progress").first.inner_text() == "120 / 120 (100%)"

        # The simulated copy of the demo study is analysed: Table 1 has both conditions, its
        # qD rows and the with/without ratio, laid out as seed 001's.
        page.goto(f"http://127.0.0.1:{port}/analysis/demo-simulated/")
        table1 = page.locator("table.analysis-table").first.inner_text().lower()
        for label in ("with-xai", "no-xai", "qd", "ratio"):
            assert label in table1

        # The lab HIT opens on the demo study and asks for a participant code.
        page.goto(f"http://127.0.0.1:{port}/lab/demo/")
        assert page.locator("input[name=code]").count() == 1

        # The local MTurk endpoint lists the published demo HIT for a qualified worker.
        worker_page = re.search(r"MTurk:\s+(\S+)", output).group(1)
        page.goto(worker_page)
        assert "A1DEMOWORKER01" in page.content()

        # A wrong password is refused.
        page.context.clear_cookies()
        page.goto(f"http://127.0.0.1:{port}/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", password + "x")
        page.click("input[type=submit]")
        error = page.wait_for_selector(".errornote")
        assert "correct username and password" in error.inner_text()
        assert "/admin/login/" in page.url
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)
    # The embedded default: a SQLite file in the data folder, nothing else needed.
    assert (tmp_path / "data" / "db.sqlite3").exists()
