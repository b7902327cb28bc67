"""Refine rounds on real Celery gpu workers, Redis and PostgreSQL.

Two workers refine at once (each round also handed over twice, as a page's retry does): each
round is computed once. A gpu worker's pool process killed with SIGKILL mid-round (while it
computes the round's maps) leaves the message to be rejected back onto the queue
(``acks_late``, ``reject_on_worker_lost``) and the advisory lock released with its database
connection; the replacement process computes the round, and the worker's page then shows it.

The worker this test starts imports this module (``--include``); while a hold file exists, it
waits right after each on-demand map is committed (a ``post_save`` receiver deferred to the
commit; no production code is touched), which is where the test kills it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from django.db import transaction
from django.db.models import Count
from django.db.models.signals import post_save
from django.test import Client

from explain.models import SaliencyMap
from studyplatform.studies.models import Event, IQRRound
from studyplatform.studies.services.events import event_record
from studyplatform.studies.services.hit import search_task_begin
from studyplatform.studies.services.tutorials import tutorial_complete
from studyplatform.studies.views import session_key
from tests.conftest import ROOT, celery_worker_argv, worker_env
from tests.studies.hit_helpers import build_assignment, build_study, hit_feature_set
from tests.studies.test_rounds import broker

__all__ = ["hit_feature_set"]

HOLD_ENV = "TEST_ROUND_HOLD_FILE"
WAIT_SECONDS = float(os.environ.get("TEST_ROUND_WAIT", "180"))


def _hold_after_commit(sender, instance: SaliencyMap, **kwargs) -> None:
    hold = Path(os.environ[HOLD_ENV])
    if not hold.exists():
        return

    def wait() -> None:
        while hold.exists():
            time.sleep(0.05)

    transaction.on_commit(wait)


if os.environ.get(HOLD_ENV):
    post_save.connect(_hold_after_commit, sender=SaliencyMap, dispatch_uid="test-round-hold")


def _gpu_worker(*, env: dict, hostname: str, log: Path) -> subprocess.Popen:
    """A prefork worker of the gpu queue as ``docker/start/gpu-worker`` runs it."""
    argv = celery_worker_argv(
        *("--queues", "gpu", "--pool", "prefork", "--concurrency", "1"),
        *("--prefetch-multiplier", "1", "--hostname", hostname, "--include", __name__),
    )
    with log.open("w") as out:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)


def _wait_for(what: str, check, *, logs: list[Path], timeout: float = WAIT_SECONDS):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    text = "\n".join(f"--- {log.name}\n{log.read_text()}" for log in logs if log.exists())
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; logs:\n{text}")


def _worker_env(redis_url, settings, **extra):
    return worker_env(
        redis_url,
        STUDYPLATFORM_DATA_DIR=str(settings.DATA_DIR),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        SALIENCY_CACHE_DIR=str(settings.SALIENCY_CACHE_DIR),
        **extra,
    )


def _worker_page(study, *, worker: str) -> tuple[Client, object]:
    """A browser session holding a fresh with-XAI first task, begun, its first result marked
    relevant and the next three not relevant."""
    assignment = build_assignment(study, worker=worker, order="ba")
    client = Client()
    session = client.session
    session[session_key(study.slug)] = assignment.pk
    session.save()
    tutorial_complete(assignment=assignment)
    task = assignment.tasks.get(position=1)
    search_task_begin(task=task)
    shown = IQRRound.objects.get(task=task, number=0).ranking
    for i, image_id in enumerate(shown[:4]):
        event_record(
            assignment=assignment,
            client_event_id=f"m-{image_id}",
            type="marked_relevant" if i == 0 else "marked_not_relevant",
            task=task,
            image_id=image_id,
        )
    return client, task


def _refine(client: Client, study, task, event_id: str) -> dict:
    import json

    response = client.post(
        f"/hit/{study.slug}/api/refine",
        json.dumps({"assignment": task.assignment_id, "task": task.pk, "id": event_id}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()["state"]


def _queued(redis_url: str) -> str:
    import redis

    client = redis.Redis.from_url(redis_url)
    return f"gpu queue {client.llen('gpu')}, default queue {client.llen('default')}"


def _succeeded(logs: list[Path]) -> int:
    """Round tasks the workers report as succeeded."""
    return sum(
        line.count("search_round_compute[") and line.count("succeeded")
        for log in logs
        for line in log.read_text().splitlines()
    )


def _state(client: Client, study) -> dict:
    return client.get(f"/hit/{study.slug}/api/state").json()["state"]


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_workers_refining_at_once_get_each_round_computed_once(
    redis_url, postgres, hit_feature_set, settings, tmp_path
):
    study = build_study(hit_feature_set)
    pages = [_worker_page(study, worker=f"W{i}") for i in (1, 2)]
    logs = [tmp_path / "gpu-1.log", tmp_path / "gpu-2.log"]
    env = _worker_env(redis_url, settings)
    workers = []
    try:
        with broker(redis_url):
            for i, (client, task) in enumerate(pages):
                state = _refine(client, study, task, f"refine-{i}")
                assert state["task"]["preparing"]["round"] == 1
                # A second hand-over of the same round (the page's retry): one more message.
                client.post(
                    f"/hit/{study.slug}/api/refine-retry",
                    f'{{"assignment": {task.assignment_id}, "task": {task.pk}}}',
                    content_type="application/json",
                )
        for i, log in enumerate(logs):
            workers.append(
                _gpu_worker(env=env, hostname=f"gpu{i}-{uuid.uuid4().hex[:6]}@localhost", log=log)
            )
        rounds = IQRRound.objects.filter(task__in=[task for _, task in pages], number=1)
        _wait_for(
            "both rounds ready",
            lambda: rounds.filter(status="ready").count() == 2,
            logs=logs,
        )
        # Every message is consumed (the duplicates find their round ready or being computed).
        _wait_for("all four messages handled", lambda: _succeeded(logs) >= 4, logs=logs)
        for client, _task in pages:
            state = _state(client, study)["task"]
            assert state["preparing"] is None
            assert state["round"] == 1
            assert all(card["overlay"] for card in state["results"])
    finally:
        for worker in workers:
            _stop(worker)
    output = "".join(log.read_text() for log in logs)
    for round_ in rounds:
        assert output.count(f"round {round_.pk}: computing") == 1
        assert output.count(f"round {round_.pk}: ready") == 1
        assert Event.objects.filter(task=round_.task, type="shown", iqr_round=1).count() == 1
        assert round_.attempts == 2
    per_pair = SaliencyMap.objects.values("query", "result", "config_key").annotate(n=Count("pk"))
    assert {row["n"] for row in per_pair} == {1}


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_gpu_worker_killed_mid_round_leaves_it_to_be_redelivered_and_the_page_shows_it(
    redis_url, postgres, hit_feature_set, settings, tmp_path
):
    from celery import Celery

    study = build_study(hit_feature_set)
    client, task = _worker_page(study, worker="W1")
    hold = tmp_path / "hold"
    hold.write_text("hold")
    log = tmp_path / "gpu.log"
    hostname = f"kill-{uuid.uuid4().hex[:8]}@localhost"
    env = _worker_env(redis_url, settings, **{HOLD_ENV: str(hold)})
    # Not the current app: shared tasks sent by this process must keep the project's routes.
    control = Celery("kill-round", broker=redis_url, backend=redis_url, set_as_current=False)
    inspector = control.control.inspect(destination=[hostname], timeout=2.0)
    worker = _gpu_worker(env=env, hostname=hostname, log=log)
    try:
        with broker(redis_url):
            _refine(client, study, task, "refine-1")
        round_ = IQRRound.objects.get(task=task, number=1)
        maps = SaliencyMap.objects.filter(query_id=task.query.image_id)
        before = maps.count()
        _wait_for(
            f"the first on-demand map (round {round_.status}, attempts {round_.attempts}, "
            f"{_queued(redis_url)})",
            lambda: maps.count() > before,
            logs=[log],
        )
        request = _wait_for(
            "the round among the active tasks",
            lambda: next(
                (
                    r
                    for r in (inspector.active() or {}).get(hostname, [])
                    if r["name"] == "studyplatform.studies.tasks.search_round_compute"
                ),
                None,
            ),
            logs=[log],
        )
        assert IQRRound.objects.get(pk=round_.pk).status == "pending"  # mid-round
        assert _state(client, study)["task"]["preparing"]["round"] == 1

        os.kill(request["worker_pid"], signal.SIGKILL)
        hold.unlink()

        _wait_for(
            "the round ready",
            lambda: IQRRound.objects.get(pk=round_.pk).status == "ready",
            logs=[log],
        )
    finally:
        hold.unlink(missing_ok=True)
        _stop(worker)
        control.close()
    output = log.read_text()
    name = f"studyplatform.studies.tasks.search_round_compute[{request['id']}]"
    assert "WorkerLostError" in output
    assert output.count(f"{name} received") == 2
    assert output.count(f"{name} succeeded") == 1
    assert output.count(f"round {round_.pk}: ready") == 1
    round_.refresh_from_db()
    state = _state(client, study)["task"]
    assert state["preparing"] is None
    assert [card["id"] for card in state["results"]] == round_.ranking
    assert all(card["overlay"] for card in state["results"])
    assert Event.objects.filter(task=task, type="shown", iqr_round=1).count() == 1
    per_pair = SaliencyMap.objects.values("query", "result", "config_key").annotate(n=Count("pk"))
    assert {row["n"] for row in per_pair} == {1}
