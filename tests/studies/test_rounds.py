"""Refine rounds as seed 001 ran them: IQR over the archive (or the pool), prepared on the gpu
queue, their missing maps computed on demand, and what happens when the queue is not there."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pytest
from django.test import Client, TestCase

from explain.models import SaliencyMap
from explain.selectors import condition_method_config
from explain.services import saliency_maps_for_results
from retrieval.iqr import IqrSession
from retrieval.selectors.features import feature_set_arrays, feature_set_rows
from studyplatform.celery import app as celery_app
from studyplatform.studies.models import Event, IQRRound
from studyplatform.studies.selectors.hit_overlays import overlay_keys
from studyplatform.studies.selectors.hit_state import task_view
from studyplatform.studies.selectors.pools import candidate_pool
from studyplatform.studies.services.events import event_record
from studyplatform.studies.services.hit import search_task_begin, search_task_refine
from studyplatform.studies.services.rounds import search_round_compute, search_round_retry
from tests.studies.hit_helpers import (
    build_assignment,
    build_study,
    hit_feature_set,
    refine_now,
)
from tests.studies.test_hit_views import accept, begin_first_task, post

pytestmark = pytest.mark.django_db
__all__ = ["hit_feature_set"]


@pytest.fixture
def study(hit_feature_set):
    return build_study(hit_feature_set)


def judge(task, image_ids, kind):
    for image_id in image_ids:
        event_record(
            assignment=task.assignment,
            client_event_id=f"m-{kind}-{image_id}",
            type=kind,
            task=task,
            image_id=image_id,
        )


def rows_of(feature_set, image_ids):
    return feature_set_rows(feature_set=feature_set, image_ids=image_ids).tolist()


def expected_ranking(study, task, session, *, previous_shown, positives, negatives):
    """What ``IqrSession`` itself shows for these marks (the study's rule for each scope)."""
    fs = study.feature_set
    _, ids = feature_set_arrays(feature_set=fs)
    marked = set(positives) | set(negatives)
    session.adjudicate(
        positives=rows_of(fs, positives),
        negatives=rows_of(fs, negatives),
        unmark=rows_of(fs, sorted(set(previous_shown) - marked)),
    )
    if study.search_scope == "pool":
        ranked = [int(ids[row]) for row in session.refine()]
        pool = candidate_pool(study=study, query=task.query)
        shown = [i for i in ranked if i in set(pool)]
        shown += [i for i in pool if i not in marked and i not in set(shown)]
        return shown[: study.results_per_round]
    return [int(ids[row]) for row in session.refine(limit=study.results_per_round)]


@pytest.mark.parametrize(
    ("scope", "working_set"),
    [("archive", "neighbours"), ("archive", "all"), ("pool", "neighbours")],
)
def test_a_studys_rounds_equal_iqr_session_on_the_same_marks(study, scope, working_set):
    study.search_scope, study.search_working_set = scope, working_set
    study.save()
    task = build_assignment(study).tasks.get(position=1)
    search_task_begin(task=task)
    features, _ = feature_set_arrays(feature_set=study.feature_set)
    query_row = rows_of(study.feature_set, [task.query.image_id])[0]
    session = IqrSession(features, query_row, working_set=working_set)
    shown: list[int] = []
    positives: list[int] = []
    negatives: list[int] = []
    for number in (1, 2):
        current = IQRRound.objects.get(task=task, number=number - 1).ranking
        shown += current
        # One relevant per round: the target (3) is not reached, the task goes on.
        judge(task, current[:1], "marked_relevant")
        judge(task, current[1:4], "marked_not_relevant")
        positives += current[:1]
        negatives += current[1:4]

        refine_now(task, f"refine-{number}")

        round_ = IQRRound.objects.get(task=task, number=number)
        assert round_.status == "ready"
        assert round_.scope == scope
        assert round_.ranking == expected_ranking(
            study,
            task,
            session,
            previous_shown=shown,
            positives=positives,
            negatives=negatives,
        )
        size = session.working_rows().size
        assert round_.working_set_size == size
    if working_set == "all":
        assert size == features.shape[0]


def test_a_with_xai_round_shows_images_outside_the_pool_with_maps_computed_on_demand(study):
    # The smallest pool: round 0 is all of it, so every result of round 1 lies outside it.
    study.candidate_pool_size = study.results_per_round
    study.save()
    task = build_assignment(study, order="ba").tasks.get(position=1)
    assert task.condition.is_xai
    search_task_begin(task=task)
    first = IQRRound.objects.get(task=task, number=0).ranking
    judge(task, first[:2], "marked_relevant")
    judge(task, first[2:], "marked_not_relevant")

    refine_now(task, "refine-1")

    round_ = IQRRound.objects.get(task=task, number=1)
    pool = set(candidate_pool(study=study, query=task.query))
    assert round_.status == "ready"
    assert len(round_.ranking) == study.results_per_round
    assert not set(round_.ranking) & pool
    keys = overlay_keys(task=task, image_ids=round_.ranking)
    assert all(keys[i] for i in round_.ranking)
    shown = Event.objects.get(task=task, type="shown", iqr_round=1)
    assert sorted(shown.payload["maps_on_demand"]) == sorted(round_.ranking)
    assert shown.payload["overlays_missing"] == []
    summary = shown.payload["round"]
    assert summary["maps_on_demand"] == round_.maps_on_demand == len(round_.ranking)
    assert summary["scope"] == "archive"
    assert summary["working_set_size"] == round_.working_set_size > 0
    assert summary["seconds"] > 0
    assert summary["queued_seconds"] >= 0
    maps = SaliencyMap.objects.filter(query_id=task.query.image_id, result_id__in=round_.ranking)
    assert maps.count() == len(round_.ranking)
    assert {m.method_config["precision"] for m in maps} == {"fp32"}
    # One result's masked embeddings serve every query: the same result for another query is
    # derived from the cached stack.
    other_query = study.task_pairs.get().query_a.image  # the study's other query
    assert other_query.pk != task.query.image_id
    computed = saliency_maps_for_results(
        feature_set=study.feature_set,
        query=other_query,
        result_ids=round_.ranking[:2],
        method_config=condition_method_config(task.condition),
    )
    assert computed == round_.ranking[:2]
    reused = SaliencyMap.objects.filter(query=other_query, result_id__in=computed)
    assert all(reused.values_list("from_cache", flat=True))


def test_a_second_refine_while_a_round_is_prepared_is_the_same_round(study):
    task = build_assignment(study).tasks.get(position=1)
    search_task_begin(task=task)

    # With a broker, the hand-over waits for a commit that never comes in this test's
    # transaction: the round stays pending (without one it would be computed at once).
    with broker("redis://127.0.0.1:1/0"):
        search_task_refine(task=task, client_event_id="refine-a")
        search_task_refine(task=task, client_event_id="refine-b")

    rounds = IQRRound.objects.filter(task=task).order_by("number")
    assert [(r.number, r.status) for r in rounds] == [(0, "ready"), (1, "pending")]
    assert Event.objects.filter(task=task, type="refine").count() == 1
    view = task_view(task=task)
    assert view["preparing"] == {"round": 1, "delayed": False, "budget_s": 10.0}
    assert view["results"] == []
    assert not view["can_refine"]

    round_ = search_round_compute(round_id=rounds[1].pk)
    again = search_round_compute(round_id=round_.pk)

    assert round_.status == again.status == "ready"
    assert Event.objects.filter(task=task, type="shown", iqr_round=1).count() == 1
    view = task_view(task=task)
    assert view["preparing"] is None
    assert view["round"] == 1
    assert [card["id"] for card in view["results"]] == round_.ranking


@contextlib.contextmanager
def broker(url: str):
    """Celery of this process sending to ``url`` instead of running tasks in place."""
    from kombu import pools

    conf = celery_app.conf
    saved = (conf.broker_url, conf.task_always_eager)

    def fresh_pools() -> None:
        # kombu keeps producer pools per broker URL process-wide: closed ones must not be
        # found again by the next test using the same URL.
        with contextlib.suppress(Exception):
            pools.reset()
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    conf.broker_url, conf.task_always_eager = url, False
    fresh_pools()
    try:
        yield
    finally:
        conf.broker_url, conf.task_always_eager = saved
        fresh_pools()


def test_with_the_broker_down_the_round_is_delayed_the_marks_kept_and_a_retry_works(study):
    task = build_assignment(study).tasks.get(position=1)
    search_task_begin(task=task)
    first = IQRRound.objects.get(task=task, number=0).ranking
    judge(task, first[:1], "marked_relevant")
    judge(task, first[1:3], "marked_not_relevant")

    with broker("redis://127.0.0.1:1/0"):  # nothing listens on port 1
        refine_now(task, "refine-1")

    round_ = IQRRound.objects.get(task=task, number=1)
    assert round_.status == "delayed"
    assert (round_.positives, sorted(round_.negatives)) == (first[:1], sorted(first[1:3]))
    assert round_.ranking == []
    assert round_.attempts == 1
    view = task_view(task=task)
    assert view["preparing"]["delayed"] is True
    assert not Event.objects.filter(task=task, type="shown", iqr_round=1).exists()

    # The broker is back (here: no broker, the embedded default): the retry computes it.
    with TestCase.captureOnCommitCallbacks(execute=True):
        search_round_retry(task=task)

    round_.refresh_from_db()
    assert round_.status == "ready"
    assert round_.attempts == 2
    assert len(round_.ranking) == study.results_per_round
    assert IQRRound.objects.filter(task=task).count() == 2
    assert Event.objects.filter(task=task, type="refine").count() == 1


@pytest.mark.redis
def test_with_no_gpu_worker_the_round_waits_on_the_gpu_queue_and_the_page_says_delayed(
    study, redis_url
):
    import redis

    study.round_budget_s = 0.2
    study.save()
    task = build_assignment(study).tasks.get(position=1)
    search_task_begin(task=task)

    with broker(redis_url):
        refine_now(task, "refine-1")
        round_ = IQRRound.objects.get(task=task, number=1)
        assert round_.status == "pending"
        assert round_.attempts == 1
        time.sleep(0.3)
        view = task_view(task=task)
        assert view["preparing"]["delayed"] is True
        with TestCase.captureOnCommitCallbacks(execute=True):
            search_round_retry(task=task)

    # Both hand-overs wait on the gpu queue (nothing on default).
    client = redis.Redis.from_url(redis_url)
    assert client.llen("gpu") == 2
    assert client.llen("default") == 0
    # A gpu worker takes the messages: the first computes the round, the second finds it ready.
    first = search_round_compute(round_id=round_.pk)
    second = search_round_compute(round_id=round_.pk)
    assert first.status == second.status == "ready"
    assert Event.objects.filter(task=task, type="shown", iqr_round=1).count() == 1
    view = task_view(task=task)
    assert view["preparing"] is None
    shown = Event.objects.get(task=task, type="shown", iqr_round=1).payload["round"]
    assert shown["over_budget"] is True
    assert shown["attempts"] == 2


def test_a_refine_on_another_workers_assignment_is_refused(study):
    mine, theirs = Client(), Client()
    my_assignment = accept(mine, study, worker="W1", assignment="A1")
    their_assignment = accept(theirs, study, worker="W2", assignment="A2")
    their_task = begin_first_task(theirs, study, their_assignment)["task"]

    as_them = post(mine, study, "refine", {"id": "r-1", "task": their_task["id"]}, their_assignment)
    into_their_task = post(
        mine, study, "refine", {"id": "r-2", "task": their_task["id"]}, my_assignment
    )
    retry_theirs = post(mine, study, "refine-retry", {"task": their_task["id"]}, my_assignment)

    assert (as_them.status_code, into_their_task.status_code, retry_theirs.status_code) == (
        403,
        403,
        403,
    )
    assert not IQRRound.objects.filter(task_id=their_task["id"], number__gte=1).exists()
    assert not Event.objects.filter(type="refine").exists()


def test_a_retry_without_a_round_being_prepared_is_refused(study):
    client = Client()
    assignment = accept(client, study)
    task = begin_first_task(client, study, assignment)["task"]

    response = post(client, study, "refine-retry", {"task": task["id"]}, assignment)

    assert response.status_code == 409
    assert response.json()["error"] == "no round is being prepared"


def test_rankings_never_hold_the_query_or_judged_images(study):
    task = build_assignment(study).tasks.get(position=1)
    search_task_begin(task=task)
    first = IQRRound.objects.get(task=task, number=0).ranking
    judge(task, first[:3], "marked_not_relevant")
    judge(task, first[3:4], "marked_relevant")
    refine_now(task, "refine-1")
    ranking = IQRRound.objects.get(task=task, number=1).ranking
    assert task.query.image_id not in ranking
    assert not set(ranking) & set(first[:4])
    assert len(set(ranking)) == len(ranking)
    assert np.all(np.asarray(ranking) > 0)


def test_the_warm_start_adds_the_nearest_neighbours_of_each_querys_first_results(study):
    from explain.selectors import saliency_plan
    from retrieval.selectors.features import search

    (xai_pair,) = study.task_pairs.all()
    query = xai_pair.query_b
    pool = candidate_pool(study=study, query=query)
    plain = {r for q, r in saliency_plan(study=study).groups[0].pairs if q == query.image_id}
    assert plain == set(pool)

    study.warm_start_neighbours = 2
    study.save()
    warm = {r for q, r in saliency_plan(study=study).groups[0].pairs if q == query.image_id}

    skip = {query.image_id, *pool}
    expected = set(pool)
    for result_id in pool[: study.results_per_round]:
        neighbours = search(
            feature_set=study.feature_set,
            query_image=study.feature_set.archive.images.get(pk=result_id),
            k=2,
            exclude=sorted(skip - {result_id}),
        )
        expected.update(image_id for image_id, _ in neighbours)
    assert warm == expected
    assert warm - set(pool)


def test_the_analysis_exports_what_each_round_ran(study):
    from analysis.selectors import study_round_table

    task = build_assignment(study).tasks.get(position=1)
    search_task_begin(task=task)
    first = IQRRound.objects.get(task=task, number=0).ranking
    judge(task, first[:1], "marked_relevant")
    refine_now(task, "refine-1")
    with broker("redis://127.0.0.1:1/0"):  # handed over at a commit that never comes
        search_task_refine(task=task, client_event_id="refine-2")  # still being prepared

    table = study_round_table(study=study)

    ready, pending = (IQRRound.objects.get(task=task, number=n) for n in (1, 2))
    assert table[["round", "status", "scope"]].values.tolist() == [
        [1, "ready", "archive"],
        [2, "pending", "archive"],
    ]
    row = table.iloc[0]
    assert row["working_set_size"] == ready.working_set_size > 0
    assert row["seconds"] == pytest.approx(ready.seconds)
    assert row["queued_seconds"] == pytest.approx(ready.queued_seconds)
    assert row["maps_on_demand"] == 0  # a no-XAI task
    assert not row["over_budget"]
    assert table.iloc[1]["over_budget"] is None
    assert pending.ranking == []
