"""The outbox: side effects written with the state change, published after commit, kept through
a broker outage and done once after it (a real Redis server stopped and started again, a real
Celery worker, the local MTurk endpoint)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest
from django.db import transaction

from mturk.models import Hit
from mturk.services import hit_publish
from studyplatform.outbox.models import OutboxEntry
from studyplatform.outbox.services import OutboxKeyConflict, outbox_enqueue, outbox_sweep
from studyplatform.studies.models import Assignment
from tests.conftest import ROOT, celery_worker_argv, service_missing, worker_env

GRANT = "mturk.tasks.mturk_participation_grant"


@pytest.mark.django_db
def test_an_entry_of_a_rolled_back_transaction_is_not_kept():
    def change_that_fails() -> None:
        with transaction.atomic():
            outbox_enqueue(task=GRANT, args=[1], key="participation-grant:1")
            raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        change_that_fails()

    assert not OutboxEntry.objects.exists()


@pytest.mark.django_db
def test_the_same_key_is_one_entry_and_another_effect_under_it_is_refused(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with transaction.atomic():
        first = outbox_enqueue(task="studyplatform.outbox.tasks.outbox_sweep", args=[], key="k")
        again = outbox_enqueue(task="studyplatform.outbox.tasks.outbox_sweep", args=[], key="k")

    assert first.pk == again.pk
    assert OutboxEntry.objects.count() == 1
    with pytest.raises(OutboxKeyConflict, match="already holds"):
        outbox_enqueue(task=GRANT, args=[2], key="k")


def _redis_port() -> int:
    """A free loopback port in 18060-18099 for a Redis server of this test."""
    for port in range(18060, 18100):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in 18060-18099")


def _start_redis(port: int, folder) -> subprocess.Popen:
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.05)
    server.kill()
    raise AssertionError(f"redis-server did not listen on {port}")


@pytest.fixture
def broker_app():
    """The project's Celery app, publishing to a broker (not eager), its pools renewed; put
    back as it was afterwards."""
    from studyplatform.celery import app

    before = (app.conf.broker_url, app.conf.task_always_eager)

    def renew(url: str) -> None:
        app.conf.broker_url = url
        app.conf.task_always_eager = False
        app._pool = None
        app.amqp._producer_pool = None

    yield renew
    app.conf.broker_url, app.conf.task_always_eager = before
    app._pool = None
    app.amqp._producer_pool = None


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_fails_no_request_and_the_grant_is_done_once_after_it(
    study, client, local_mturk, broker_app, tmp_path, settings
):
    if shutil.which("redis-server") is None:
        service_missing("redis-server", "not on PATH")
    settings.HIT_EXTRA_SUBMIT_ORIGINS = [local_mturk.url]
    hit_publish(study=study, client=client, confirm=True)
    hit = Hit.objects.order_by("batch").first()
    local_mturk.worker("AOUTAGE1", country="US", approved_count=2000, approval_rate=99)
    mturk_id = local_mturk.accept("AOUTAGE1", hit.hit_id)
    port = _redis_port()
    url = f"redis://127.0.0.1:{port}/4"
    broker_app(url)  # nothing listens there yet: the broker is down

    from django.test import Client

    page = Client().get(
        f"/hit/{study.slug}/",
        {"assignmentId": mturk_id, "hitId": hit.hit_id, "workerId": "AOUTAGE1",
         "turkSubmitTo": local_mturk.url},
    )  # fmt: skip

    assert page.status_code == 200
    assignment = Assignment.objects.get(mturk_assignment_id=mturk_id)
    entry = OutboxEntry.objects.get(key=f"participation-grant:{assignment.pk}")
    assert entry.done_at is None
    assert entry.publish_count == 0
    assert "Error" in entry.last_error
    assert local_mturk.calls("AssociateQualificationWithWorker") == 0

    redis = _start_redis(port, tmp_path)
    worker = None
    try:
        assert outbox_sweep() == 1
        env = worker_env(url, MTURK_LOCAL_URL=local_mturk.url)
        worker = subprocess.Popen(
            celery_worker_argv("--queues", "default", "--pool", "solo", "--hostname", "ob@%h"),
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            entry.refresh_from_db()
            if entry.done_at is not None:
                break
            time.sleep(0.2)
        # A sweep after the entry is done publishes nothing more.
        assert outbox_sweep() == 0
    finally:
        output = ""
        if worker is not None:
            worker.terminate()
            output = worker.communicate(timeout=30)[0]
        redis.terminate()
        redis.wait(timeout=10)

    assert entry.done_at is not None, output[-3000:]
    assert entry.publish_count == 1
    assert local_mturk.calls("AssociateQualificationWithWorker") == 1
