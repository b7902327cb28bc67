"""Celery: queues and routing, task options, an eager smoke test and a real worker on Redis."""

from __future__ import annotations

import subprocess
import time

import pytest
from celery import Celery
from django.conf import settings

from retrieval.models import Archive, Category
from retrieval.tasks import archive_statistics_refresh
from studyplatform.celery import app
from tests.conftest import ROOT, celery_worker_argv, worker_env


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        ("retrieval.tasks.archive_statistics_refresh", "default"),
        ("retrieval.tasks.feature_set_extract", "gpu"),
        ("retrieval.tasks.iqr_rerank", "gpu"),
        ("explain.tasks.saliency_precompute_chunk", "gpu"),
        ("mturk.tasks.assignments_sync", "default"),
        ("analysis.tasks.analysis_export", "default"),
        ("studyplatform.tasks.anything", "default"),
    ],
)
def test_tasks_are_routed_by_module(task_name, queue):
    route = app.amqp.router.route({}, task_name)

    assert route["queue"].name == queue


def test_both_queues_are_declared():
    assert {q.name for q in app.conf.task_queues} == {"default", "gpu"}


def test_idempotent_tasks_ack_late_and_are_rejected_when_the_worker_dies():
    assert archive_statistics_refresh.acks_late is True
    assert archive_statistics_refresh.reject_on_worker_lost is True
    assert app.conf.task_time_limit > app.conf.task_soft_time_limit > 0


def _archive_with_stale_statistics(tmp_path) -> Archive:
    from retrieval.services import archive_import_coco
    from retrieval.synthetic import generate_archive

    folder = tmp_path / "archive"
    generate_archive(folder, n_images=40, seed=1)
    archive = archive_import_coco(
        archive_name="celery", instances_path=folder / "instances.json", image_dir=folder / "images"
    ).archive
    Category.objects.filter(archive=archive).update(
        instance_count=0, image_count=0, clutter=None, size=None
    )
    return archive


@pytest.mark.django_db
def test_without_a_broker_tasks_run_in_process(tmp_path):
    archive = _archive_with_stale_statistics(tmp_path)
    assert app.conf.task_always_eager is True

    result = archive_statistics_refresh.delay(archive.pk)

    assert result.get() == 24
    assert not Category.objects.filter(
        archive=archive, clutter__isnull=True, instance_count__gt=0
    ).exists()
    assert Category.objects.filter(archive=archive, instance_count__gt=0).count() >= 20


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_task_from_redis_end_to_end(tmp_path, redis_url):
    archive = _archive_with_stale_statistics(tmp_path)
    env = worker_env(redis_url)
    worker = subprocess.Popen(
        celery_worker_argv(*("--queues", "default,gpu", "--pool", "solo", "--hostname", "test@%h")),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    producer = Celery("producer")
    producer.config_from_object(settings, namespace="CELERY")
    producer.conf.update(broker_url=redis_url, result_backend=redis_url, task_always_eager=False)
    try:
        started = time.monotonic()
        result = producer.send_task(
            "retrieval.tasks.archive_statistics_refresh",
            args=[archive.pk],
            **_route(producer, "retrieval.tasks.archive_statistics_refresh"),
        )
        assert result.get(timeout=90) == 24
        assert time.monotonic() - started < 90
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0]

    assert "retrieval.tasks.archive_statistics_refresh" in output
    assert "succeeded" in output
    refreshed = Category.objects.filter(archive=archive, instance_count__gt=0)
    assert refreshed.count() >= 20
    assert not refreshed.filter(clutter__isnull=True).exists()


def _route(producer: Celery, name: str) -> dict:
    return {"queue": producer.amqp.router.route({}, name)["queue"].name}
