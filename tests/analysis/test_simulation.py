"""Simulated workers driving the real worker pages of the demo study."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from analysis.selectors import study_likert_table, study_task_table
from analysis.simulation import WorkerModel, study_simulate
from studyplatform.studies.models import Assignment, Event, Participant
from studyplatform.studies.services.assignments import study_pair_capacities
from tests.studies import conftest as demo

# The study app's demo-study fixtures, used here as they are.
_demo_features = demo._demo_features
demo_feature_set = demo.demo_feature_set
demo_spec = demo.demo_spec
demo_study = demo.demo_study

START = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
METRICS = [
    "position",
    "condition",
    "query_class",
    "nP",
    "claimed_positives",
    "nA",
    "T",
    "rounds_used",
]


def test_simulated_workers_complete_their_hits_through_the_pages(demo_study):
    report = study_simulate(study=demo_study, workers=3, seed=5, start=START)
    assert report.submitted == 3
    assert not report.refused
    assert Assignment.objects.filter(study=demo_study, status="submitted").count() == 3
    table = study_task_table(study=demo_study)
    assert len(table) == 6
    assert set(table["condition"]) == {"no-xai", "sbsm"}
    # T is the virtual time of the judgements: several seconds each, never zero.
    assert (table["T"] > table["nA"] * 1.0).all()
    assert (table["nA"] > 0).all()
    likert = study_likert_table(study=demo_study)
    assert {"easy_to_judge", "prefer_with_maps"} <= set(likert["question"])
    marks = Event.objects.filter(assignment__study=demo_study, type="marked_relevant")
    assert not marks.filter(client_time__isnull=True).exists()


def test_the_same_seed_gives_the_same_data(demo_study):
    study_simulate(study=demo_study, workers=2, seed=11, start=START)
    first = study_task_table(study=demo_study)[METRICS]
    Assignment.objects.filter(study=demo_study).delete()
    Participant.objects.all().delete()
    study_simulate(study=demo_study, workers=2, seed=11, start=START)
    again = study_task_table(study=demo_study)[METRICS]
    assert first.equals(again)
    Assignment.objects.filter(study=demo_study).delete()
    Participant.objects.all().delete()
    study_simulate(study=demo_study, workers=2, seed=12, start=START)
    assert not first.equals(study_task_table(study=demo_study)[METRICS])


def test_a_perfect_oracle_claims_only_true_positives(demo_study):
    model = WorkerModel(miss_rate=0.0, false_mark_rate=0.0, change_rate=0.0)
    study_simulate(study=demo_study, workers=2, seed=1, model=model, start=START)
    table = study_task_table(study=demo_study)
    assert (table["precision"].dropna() == 1.0).all()
    assert (table["nP"] == table["claimed_positives"]).all()


def test_explanations_slow_judgements_down_by_the_time_factor(demo_study):
    model = WorkerModel(xai_time_factor=3.0, change_rate=0.0)
    study_simulate(study=demo_study, workers=4, seed=2, model=model, start=START)
    table = study_task_table(study=demo_study)
    per_judgement = (table["T"] / table["nA"]).groupby(table["is_xai"]).mean()
    assert per_judgement[True] > 1.8 * per_judgement[False]


def test_mturk_mode_opens_the_hit_with_its_parameters(demo_study):
    report = study_simulate(study=demo_study, workers=1, seed=3, mode="mturk", start=START)
    assert report.submitted == 1
    assignment = Assignment.objects.get(study=demo_study)
    assert assignment.participant.source == "mturk"
    assert assignment.mturk_assignment_id == "SIM3A0"


def test_workers_beyond_the_cells_are_refused_not_crashed(demo_study):
    demo_study.repetitions = 1
    demo_study.save()
    # repetitions: distinct workers per pair, both orders together.
    n_cells = sum(study_pair_capacities(study=demo_study).values())
    report = study_simulate(
        study=demo_study,
        workers=n_cells + 1,
        seed=0,
        start=START,
        model=WorkerModel(seconds_per_judgement=1),
    )
    assert report.submitted == n_cells
    assert len(report.refused) == 1


def test_the_command_reports_and_checks_its_arguments(demo_study):
    out = io.StringIO()
    call_command(
        "simulate_study", study="demo", workers=1, seed=4, stdout=out, stderr=io.StringIO()
    )
    assert "1 of 1 simulated workers submitted" in out.getvalue()
    with pytest.raises(CommandError, match="miss_rate must be in"):
        call_command("simulate_study", study="demo", workers=1, miss_rate=1.5)
    with pytest.raises(CommandError, match="no study with slug"):
        call_command("simulate_study", study="nope", workers=1)


def test_a_tiny_simulated_study_runs_end_to_end_in_one_command(demo_study, tmp_path):
    out = io.StringIO()
    call_command(
        "simulate_study", study="demo", workers=6, seed=0, export=str(tmp_path / "export"),
        permutations=200, stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    assert "6 of 6 simulated workers submitted" in out.getvalue()
    assert "Analysed 12 tasks of demo" in out.getvalue()
    sheets = pd.read_excel(tmp_path / "export" / "analysis.xlsx", sheet_name=None)
    assert set(sheets) == {
        "tasks",
        "table1",
        "table2",
        "tests",
        "class_ratios",
        "order_effects",
        "likert",
        "notes",
    }
    assert len(sheets["tasks"]) == 12
    assert sheets["table1"].shape[0] == 6
    assert {"figure4.png", "accuracy.png", "figure5.png"} <= {
        p.name for p in (tmp_path / "export").iterdir()
    }
