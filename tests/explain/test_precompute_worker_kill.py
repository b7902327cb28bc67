"""A study's queued precompute survives a Celery worker killed with SIGKILL mid-chunk.

Two failures. The likelier one: the worker's pool process dies while it holds a chunk (the
kernel's OOM killer picks the largest process: the one holding the network and the masked
embeddings, not the worker's main process). The main process sees the pool process lost and,
since the chunk task is ``acks_late`` with ``reject_on_worker_lost``, rejects the message back
onto the queue at once; its replacement pool process takes it again and computes only the maps
that are missing. The other: the whole worker dies (main process and pool). Its messages stay
unacknowledged in Redis until a worker finds them older than the visibility timeout
(``CELERY_VISIBILITY_TIMEOUT``, 6 h in production, 1 s for the worker this test starts next).

To land the kill between two maps of one chunk on every run, the worker this test starts
imports this module (``--include``) and, while a hold file exists, waits right after each map of
the chosen result image is committed (a ``post_save`` receiver deferred to the commit; no
production code is touched). The test kills the pool process, or the whole worker, while it
waits there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count
from django.db.models.signals import post_save

from explain.models import SaliencyMap
from explain.selectors import saliency_plan, saliency_progress_detail
from tests.conftest import ROOT, celery_worker_argv, worker_env
from tests.explain import test_precompute as tiny

# The tiny SBSM study of the precompute tests (two with-XAI queries with overlapping pools).
feature_set = tiny.feature_set
study = tiny.study

#: Names the hold file in the worker's environment; unset everywhere else.
HOLD_ENV = "TEST_PRECOMPUTE_HOLD_FILE"
WAIT_SECONDS = 120.0


def _hold_after_commit(sender, instance: SaliencyMap, **kwargs) -> None:
    """After a map of the held result is committed, wait while the hold file exists.

    The file holds the result image id. Runs in the worker's pool process only.
    """
    hold = Path(os.environ[HOLD_ENV])
    try:
        held = int(hold.read_text())
    except (FileNotFoundError, ValueError):
        return
    if instance.result_id != held:
        return

    def wait() -> None:
        while hold.exists():
            time.sleep(0.05)

    # post_save fires inside update_or_create's transaction: wait once the row is visible.
    transaction.on_commit(wait)


if os.environ.get(HOLD_ENV):
    post_save.connect(_hold_after_commit, sender=SaliencyMap, dispatch_uid="test-kill-hold")


def _worker(*, env: dict, hostname: str, log: Path) -> subprocess.Popen:
    """A prefork worker as ``docker/start/gpu-worker`` runs it, on both queues, logging to
    ``log``; in its own session so the test can end it and its pool processes."""
    argv = celery_worker_argv(
        *("--queues", "gpu,default", "--pool", "prefork", "--concurrency", "1"),
        *("--prefetch-multiplier", "1", "--hostname", hostname, "--include", __name__),
    )
    with log.open("w") as out:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(worker: subprocess.Popen) -> None:
    """Warm shutdown; the whole session (main and pool processes) killed if it does not end."""
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)


def _wait_for(what: str, check, *, log: Path, timeout: float = WAIT_SECONDS):
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(
        f"timed out after {timeout:.0f} s waiting for {what}; worker log:\n" + log.read_text()
    )


def _active_request(inspector, *, hostname: str, result_id: int) -> dict | None:
    """The worker's running chunk task of ``result_id`` (with the pid of its pool process)."""
    active = (inspector.active() or {}).get(hostname, [])
    for request in active:
        if (
            request["name"] == "explain.tasks.saliency_precompute_chunk"
            and request["args"][1] == result_id
        ):
            return request
    return None


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("victim", ["pool process", "whole worker"])
def test_a_worker_killed_mid_chunk_leaves_every_map_exactly_once_and_rendered(
    victim, redis_url, postgres, study, settings, tmp_path
):
    plan = saliency_plan(study=study)
    (group,) = plan.groups
    chunks = group.chunks()
    # The chunk to interrupt: a result image that several queries need.
    held_result, held_queries = max(chunks.items(), key=lambda item: (len(item[1]), -item[0]))
    assert len(held_queries) >= 2, "the tiny study has no result shared by two queries"
    hold = tmp_path / "hold"
    hold.write_text(str(held_result))
    log = tmp_path / "worker.log"
    second_log = tmp_path / "second-worker.log"
    second = None
    hostname = f"kill-{uuid.uuid4().hex[:8]}@localhost"
    # The worker and the command write where this test reads: its data, media and cache folders.
    env = worker_env(
        redis_url,
        STUDYPLATFORM_DATA_DIR=str(settings.DATA_DIR),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        SALIENCY_CACHE_DIR=str(settings.SALIENCY_CACHE_DIR),
    )
    control = Celery("kill-test", broker=redis_url, backend=redis_url)
    inspector = control.control.inspect(destination=[hostname], timeout=2.0)
    worker = _worker(env={**env, HOLD_ENV: str(hold)}, hostname=hostname, log=log)
    try:
        # Queue the study's chord the way an operator does; return once it is queued.
        subprocess.run(
            [
                sys.executable,
                "manage.py",
                "precompute_saliency",
                "--study",
                study.slug,
                *("--timeout", "0.01", "--poll", "0.01", "--verbosity", "0"),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=WAIT_SECONDS,
            capture_output=True,
        )
        held_maps = SaliencyMap.objects.filter(result_id=held_result)
        _wait_for("the first map of the held chunk", held_maps.exists, log=log)
        request = _wait_for(
            "the held chunk among the active tasks",
            lambda: _active_request(inspector, hostname=hostname, result_id=held_result),
            log=log,
        )
        before_kill = list(held_maps.values_list("pk", "query_id", "created_at"))
        assert 1 <= len(before_kill) < len(held_queries)  # mid-chunk

        if victim == "pool process":
            os.kill(request["worker_pid"], signal.SIGKILL)
        else:
            # The main process and its pool at once (its own session): nobody is left to
            # reject the message; it stays unacknowledged in Redis until a worker finds it
            # older than the visibility timeout, which the next worker, started with 1 s, does
            # as it starts polling.
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        _wait_for(
            "the killed pool process to be reaped", lambda: _gone(request["worker_pid"]), log=log
        )
        hold.unlink()
        if victim == "whole worker":
            second = _worker(
                env={**env, "CELERY_VISIBILITY_TIMEOUT": "1"},
                hostname=f"second-{hostname}",
                log=second_log,
            )

        progress = _wait_for(
            "every map and overlay of the plan",
            lambda: (
                (p := saliency_progress_detail(study=study, plan=plan)).rendered == p.total and p
            ),
            log=second_log if second else log,
        )
    finally:
        hold.unlink(missing_ok=True)
        _stop(worker)
        if second is not None:
            _stop(second)
        control.close()
    output = log.read_text()

    # The kill happened, and the same message ran again to success in a new process.
    task = f"explain.tasks.saliency_precompute_chunk[{request['id']}]"
    if victim == "pool process":
        assert "WorkerLostError" in output
        assert output.count(f"{task} received") == 2
        assert output.count(f"{task} succeeded") == 1
    else:
        assert output.count(f"{task} received") == 1
        assert f"{task} succeeded" not in output
        redelivered = second_log.read_text()
        assert redelivered.count(f"{task} received") == 1
        assert redelivered.count(f"{task} succeeded") == 1
    rows = SaliencyMap.objects.filter(feature_set_id=plan.feature_set_id)
    assert progress.done == progress.total == plan.total == rows.count()
    assert set(rows.values_list("query_id", "result_id")) == group.pairs
    per_key = rows.values("feature_set", "query", "result", "config_key").annotate(n=Count("pk"))
    assert {row["n"] for row in per_key} == {1}
    # The maps committed before the kill were kept, not computed again; the rest of the chunk
    # came from the masked embeddings the killed process had cached.
    after = {
        pk: (query_id, created)
        for pk, query_id, created in held_maps.values_list("pk", "query_id", "created_at")
    }
    assert all(after.get(pk) == (query_id, created) for pk, query_id, created in before_kill)
    assert len(after) == len(held_queries)
    assert all(
        held_maps.exclude(pk__in=[pk for pk, _, _ in before_kill]).values_list(
            "from_cache", flat=True
        )
    )
    # Every overlay rendered once the group existed, its style and range stored with it (each
    # map on its own scale, the default since overlays follow the papers' look).
    assert all(row.vmax is not None and row.overlay_config.get("vmax") == row.vmax for row in rows)
    assert all(default_storage.exists(key) for key in rows.values_list("overlay_key", flat=True))
