"""Per-task metrics from events (seed 001 section 4) and top-N accuracy (seed 000 Eq. 5)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from analysis.frame import AnalysisError
from analysis.metrics import accuracy_per_round, task_metrics

CLASSES = {1: {"cat"}, 2: {"cat", "dog"}, 3: {"dog"}, 4: {"cat"}, 5: set(), 6: {"cat"}}
START = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


EVENTS = [
    {"type": "page_view", "image": None, "time": at(-30)},
    {"type": "shown", "image": None, "time": at(0), "iqr_round": 0},
    {"type": "marked_relevant", "image": 1, "time": at(5)},
    {"type": "marked_relevant", "image": 2, "time": at(6)},
    {"type": "marked_relevant", "image": 3, "time": at(7)},  # wrong: no cat
    {"type": "marked_not_relevant", "image": 4, "time": at(8)},  # a cat missed
    {"type": "refine", "image": None, "time": at(9)},
    {"type": "shown", "image": None, "time": at(10), "iqr_round": 1},
    {"type": "marked_not_relevant", "image": 2, "time": at(11)},  # changes its mind
    {"type": "marked_relevant", "image": 5, "time": at(12)},
    {"type": "unmarked", "image": 5, "time": at(13)},  # withdraws
    {"type": "task_end", "image": None, "time": at(75.5)},
]


def test_positives_count_final_relevant_images_holding_the_target():
    metrics = task_metrics(EVENTS, CLASSES, "cat")

    # final relevant: 1 (cat), 3 (dog); image 2 was switched to not relevant, 5 withdrawn
    assert metrics.nP == 1
    assert metrics.claimed_positives == 2
    assert metrics.precision == 0.5


def test_na_counts_images_adjudicated_and_judgement_events_every_change():
    metrics = task_metrics(EVENTS, CLASSES, "cat")
    assert metrics.nA == 4  # images 1, 2, 3, 4 (seed 001: images adjudicated)
    assert metrics.judgement_events == 6  # 2 judged twice, 5 judged then withdrawn


def test_time_runs_from_first_results_shown_to_task_end_and_rounds_are_counted():
    metrics = task_metrics(EVENTS, CLASSES, "cat")

    assert pytest.approx(75.5) == metrics.T
    assert metrics.rounds_used == 1


def test_events_are_accepted_in_any_order_and_as_a_dataframe_with_seconds():
    shuffled = pd.DataFrame(list(reversed(EVENTS)))
    shuffled["time"] = [(e - START).total_seconds() for e in shuffled["time"]]

    assert task_metrics(shuffled, CLASSES, "cat") == task_metrics(EVENTS, CLASSES, "cat")


def test_nothing_claimed_gives_an_undefined_precision_not_a_division_error():
    events = [{"type": "shown", "time": 0.0}, {"type": "task_end", "time": 3.0}]
    metrics = task_metrics(events, CLASSES, "cat")

    assert (metrics.nP, metrics.claimed_positives, metrics.nA) == (0, 0, 0)
    assert math.isnan(metrics.precision)


def test_a_task_without_results_shown_is_refused():
    with pytest.raises(AnalysisError, match="no 'shown' event"):
        task_metrics([{"type": "task_end", "time": 1.0}], CLASSES, "cat")


def test_a_judged_image_without_annotations_is_named():
    events = [{"type": "shown", "time": 0.0}, {"type": "marked_relevant", "image": 99, "time": 1.0}]
    with pytest.raises(AnalysisError, match=r"judged image\(s\) \[99\]"):
        task_metrics(events, CLASSES, "cat")


def test_accuracy_is_the_fraction_of_the_top_n_holding_the_target():
    ranking = [1, 3, 2, 5, 6, 4]

    assert accuracy_per_round([ranking], CLASSES, "cat", n=4) == {"acc_round_0": 2 / 4}
    assert accuracy_per_round([ranking], CLASSES, "cat", n=6) == {"acc_round_0": 4 / 6}
    # Eq. 5 divides by N: a short ranking counts its missing results as misses
    assert accuracy_per_round([ranking], CLASSES, "cat", n=12) == {"acc_round_0": 4 / 12}
    with pytest.raises(AnalysisError, match="twice"):
        accuracy_per_round([[1, 1]], CLASSES, "cat", n=2)


def test_accuracy_per_round_names_its_columns_by_round():
    result = accuracy_per_round([[3, 5], [1, 3], [1, 2]], CLASSES, "cat", n=2)

    assert result == {"acc_round_0": 0.0, "acc_round_1": 0.5, "acc_round_2": 1.0}


@pytest.mark.parametrize("time", [float("nan"), "soon", None])
def test_an_invalid_event_time_is_named(time):
    with pytest.raises(AnalysisError, match="event time"):
        task_metrics([{"type": "shown", "time": time}], CLASSES, "cat")
