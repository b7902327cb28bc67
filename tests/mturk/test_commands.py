"""``manage.py mturk ...`` against the local endpoint."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from mturk.models import Hit


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("mturk", *args, stdout=out)
    return out.getvalue()


def test_publish_shows_the_plan_and_needs_yes(study, local_mturk):
    common = ["--study", study.slug, "--environment", "local", "--endpoint-url", local_mturk.url]
    with pytest.raises(CommandError, match="--yes"):
        run("publish", *common)
    assert not Hit.objects.exists()
    out = run("publish", *common, "--yes")
    assert "total    $43.20" in out
    assert "account balance $10000.00" in out
    assert "created 3 HITs" in out
    assert local_mturk.store.counts()["hits"] == 3


def test_the_other_subcommands_use_the_environment_of_the_launch(study, local_mturk):
    run("publish", "--study", study.slug, "--environment", "local", "--yes")
    hit = Hit.objects.order_by("batch").first()
    local_mturk.worker("AWORKER1")
    mturk_id = local_mturk.accept("AWORKER1", hit.hit_id)
    local_mturk.control("submit", {"assignment_id": mturk_id})
    assert "on MTurk but unknown here: ['" + mturk_id in run("sync", "--study", study.slug)
    out = run(
        "bonus",
        "--worker",
        "AWORKER1",
        "--assignment",
        mturk_id,
        "--amount",
        "0.25",
        "--reason",
        "thanks",
    )
    assert "bonus $0.25 to AWORKER1: sent" in out
    assert "0 approved" in run("approve", "--study", study.slug)  # incomplete here
    assert "expired 3 HITs" in run("expire", "--study", study.slug)
    assert run("balance", "--environment", "local").strip() == "$9999.70"


def test_an_unknown_study_is_named(db, local_mturk):
    with pytest.raises(CommandError, match="No study with slug 'nope'"):
        run("sync", "--study", "nope")


def test_a_reward_that_is_not_an_amount_is_a_clear_command_error(study, local_mturk):
    study.mturk["reward"] = "abc"
    study.save()
    with pytest.raises(CommandError, match=r"mturk\.reward: 'abc' is not an amount"):
        run("publish", "--study", study.slug, "--environment", "local", "--yes")


@pytest.mark.slow  # manage.py imports the whole project (torch included) before serving
def test_the_local_server_command_serves_the_api_and_worker_pages(tmp_path, aws_env):
    import json
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    from tests.conftest import free_port

    port = free_port()
    state = tmp_path / "state.sqlite3"
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "mturk_local_server",
            "--port",
            str(port),
            "--state",
            str(state),
            "--worker",
            "AW1:CA:1200:98",
            "--quiet",
        ],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(2400):  # up to 4 minutes on a loaded machine
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_control/state") as response:
                    state_json = json.loads(response.read())
                break
            except OSError:
                assert process.poll() is None, "the local endpoint exited"
                time.sleep(0.1)
        else:
            pytest.fail("the local endpoint did not start")
        assert state_json["workers"][0]["id"] == "AW1"
        assert state_json["workers"][0]["country"] == "CA"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/worker/") as response:
            assert "AW1" in response.read().decode()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert state.exists()
