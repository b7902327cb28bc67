"""The stopping rule of the study spec: ``at_target`` ends a task at the target count,
``at_least`` (seed 001: "find at least 12") lets the worker go on and finish by choice."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from analysis.selectors import study_task_table
from retrieval.models import Annotation
from studyplatform.studies.errors import HitRefused
from studyplatform.studies.models import IQRRound, SearchTask, Study
from studyplatform.studies.selectors.hit_state import task_view
from studyplatform.studies.services.events import event_record
from studyplatform.studies.services.hit import (
    search_task_begin,
    search_task_finish,
    search_task_refine,
)
from studyplatform.studies.services.judgements import judgement_record
from studyplatform.studies.services.specs import StudySpecError, study_spec_validate
from studyplatform.studies.services.studies import study_create_from_spec
from tests.studies.hit_helpers import build_assignment, build_study
from tests.studies.hit_helpers import hit_feature_set as _hit_feature_set

hit_feature_set = _hit_feature_set

pytestmark = pytest.mark.django_db


def _stop(study: Study, **spec) -> Study:
    study.spec = {**study.spec, **spec}
    study.save(update_fields=["spec"])
    return study


def _mark_all(assignment, task, kind: str = "marked_relevant") -> int:
    """Mark every result the task has shown; returns how many. Under ``at_least`` no
    judgement says the target is reached, so nothing would end the task."""
    shown = [i for r in IQRRound.objects.filter(task=task) for i in r.ranking]
    for n, image_id in enumerate(shown):
        judgement = judgement_record(
            assignment=assignment,
            client_event_id=f"m{task.pk}-{n}",
            type=kind,
            task=task,
            image_id=image_id,
            iqr_round=0,
        )
        assert not judgement.target_reached
    return len(shown)


def test_at_least_goes_past_the_target_and_ends_when_the_worker_finishes(hit_feature_set):
    study = _stop(build_study(hit_feature_set), stop="at_least")
    assignment = build_assignment(study)
    task = search_task_begin(task=assignment.tasks.get(position=1))

    marked = _mark_all(assignment, task)  # 6 results shown, target 3

    task.refresh_from_db()
    assert marked > study.target_count
    assert task.ended_at is None  # not stopped at the target
    view = task_view(task=task)
    assert (view["found"], view["target"], view["stop"]) == (marked, 3, "at_least")
    assert view["can_finish"]  # by choice, while refines are left
    assert view["can_refine"]

    search_task_finish(task=task)

    task.refresh_from_db()
    assert task.end_reason == SearchTask.EndReason.FINISHED
    end = task.events.get(type="task_end")
    assert end.payload == {"reason": "finished", "found": marked}


def test_at_least_np_counts_every_true_positive_past_the_target(hit_feature_set):
    study = _stop(build_study(hit_feature_set), stop="at_least")
    assignment = build_assignment(study)
    task = search_task_begin(task=assignment.tasks.get(position=1))
    shown = [i for r in IQRRound.objects.filter(task=task) for i in r.ranking]
    holding = set(
        Annotation.objects.filter(
            image_id__in=shown, category_id=task.query.category_id
        ).values_list("image_id", flat=True)
    )
    _mark_all(assignment, task)
    search_task_finish(task=task)
    other = search_task_begin(task=assignment.tasks.get(position=2))
    search_task_finish(task=other)
    assignment.status = "submitted"
    assignment.save(update_fields=["status"])

    table = study_task_table(study=study).set_index("position")

    assert table.loc[1, "nP"] == len(holding)
    assert table.loc[1, "claimed_positives"] == len(shown)


def test_at_target_still_stops_at_the_target_and_refuses_an_early_finish(hit_feature_set):
    study = build_study(hit_feature_set)
    assignment = build_assignment(study)
    task = search_task_begin(task=assignment.tasks.get(position=1))
    assert not task_view(task=task)["can_finish"]
    with pytest.raises(HitRefused, match="refine rounds are left"):
        search_task_finish(task=task)

    reached = [
        judgement_record(
            assignment=assignment,
            client_event_id=f"m{n}",
            type="marked_relevant",
            task=task,
            image_id=image_id,
        ).target_reached
        for n, image_id in enumerate(IQRRound.objects.get(task=task).ranking[:3])
    ]

    assert reached == [False, False, True]  # the 3rd relevant mark reaches the target (3)


def test_past_the_time_limit_the_task_ends_and_marks_are_refused(hit_feature_set):
    study = _stop(build_study(hit_feature_set), stop="at_least", task_time_limit_minutes=5)
    assignment = build_assignment(study)
    task = search_task_begin(task=assignment.tasks.get(position=1))
    assert 0 < task_view(task=task)["time_left"] <= 300
    SearchTask.objects.filter(pk=task.pk).update(
        started_at=timezone.now() - dt.timedelta(minutes=6)
    )
    image_id = IQRRound.objects.get(task=task).ranking[0]

    with pytest.raises(HitRefused, match="time is up"):
        event_record(
            assignment=assignment,
            client_event_id="late",
            type="marked_relevant",
            task=task,
            image_id=image_id,
        )

    task.refresh_from_db()
    assert task.end_reason == SearchTask.EndReason.TIME_UP
    assert not task.events.filter(client_event_id="late").exists()
    with pytest.raises(HitRefused, match="running task"):
        search_task_refine(task=task, client_event_id="r1")


def test_at_least_without_a_round_or_time_limit_is_refused_and_nothing_written(
    demo_feature_set, demo_spec
):
    spec = {**demo_spec, "stop": "at_least", "sizes": {**demo_spec["sizes"], "iqr_rounds": 0}}

    with pytest.raises(StudySpecError, match=r"^stop: at_least .* needs a limit"):
        study_create_from_spec(spec=spec)
    assert not Study.objects.exists()

    limited = study_spec_validate({**spec, "task_time_limit_minutes": 10})
    assert (limited["stop"], limited["task_time_limit_minutes"]) == ("at_least", 10)
    with pytest.raises(StudySpecError, match=r"^stop: must be one of"):
        study_spec_validate({**demo_spec, "stop": "never"})
    with pytest.raises(StudySpecError, match=r"^overlay\.scale: must be one of"):
        study_spec_validate({**demo_spec, "overlay": {"scale": "image"}})
    with pytest.raises(StudySpecError, match=r"^overlay\.alpha: must be <= 1\.0"):
        study_spec_validate({**demo_spec, "overlay": {"alpha": 2}})
    with pytest.raises(StudySpecError, match=r"^overlay\.colormap: unknown colormap"):
        study_spec_validate({**demo_spec, "overlay": {"colormap": "rainbowish"}})
    overlay = study_spec_validate({**demo_spec, "overlay": {"scale": "study"}})["overlay"]
    assert overlay == {
        "scale": "study", "colormap": "jet", "alpha": 0.5, "blend": "fixed", "percentile": 99.0
    }  # fmt: skip


def test_each_round_keeps_the_top_50_of_the_ranking_it_produced(hit_feature_set):
    from retrieval.selectors.features import search

    study = build_study(hit_feature_set)
    assignment = build_assignment(study)
    task = search_task_begin(task=assignment.tasks.get(position=1))
    first = IQRRound.objects.get(task=task, number=0)
    nearest = search(
        feature_set=study.feature_set, query_image=task.query.image, k=50, metric=study.distance
    )
    assert first.top_ranking == [image_id for image_id, _ in nearest]
    assert len(first.ranking) == study.results_per_round  # what was shown: 6 of the pool
    judged = first.ranking[:2]
    for n, image_id in enumerate(judged):
        event_record(
            assignment=assignment,
            client_event_id=f"j{n}",
            type="marked_relevant",
            task=task,
            image_id=image_id,
        )

    search_task_refine(task=task, client_event_id="refine-1")

    second = IQRRound.objects.get(task=task, number=1)
    assert len(second.top_ranking) == 50
    assert len(set(second.top_ranking)) == 50
    assert not set(judged) & set(second.ranking)  # shown: unjudged only
    # the produced ranking, as SMQTK's: the positives first, then the SVM's order
    assert second.top_ranking[:2] == sorted(judged)
