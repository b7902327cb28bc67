"""Power of the stratified permutation test, estimated on simulated per-task data."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from analysis.frame import AnalysisError
from analysis.power import PowerModel, power_curve, simulate_tasks, workers_needed


def test_each_simulated_worker_does_two_classes_one_with_explanations():
    data = simulate_tasks(PowerModel(), 500, np.random.default_rng(0))
    assert len(data) == 1000
    first, second = data.iloc[:500], data.iloc[500:]
    assert (first["query_class"].to_numpy() != second["query_class"].to_numpy()).all()
    assert (first["is_xai"].to_numpy() != second["is_xai"].to_numpy()).all()
    assert data["in_group"].mean() == pytest.approx(0.5, abs=0.05)


def test_the_simulated_gain_is_the_effect_on_average():
    model = PowerModel(effect=0.3, class_sd=0.0)
    data = simulate_tasks(model, 20_000, np.random.default_rng(1))
    group = data[data["in_group"]]
    means = group.groupby("is_xai")["nP"].mean()
    assert means[True] / means[False] - 1 == pytest.approx(0.3, abs=0.03)
    assert data.loc[~data["is_xai"], "nP"].mean() == pytest.approx(18.0, rel=0.03)


def test_without_an_effect_detections_happen_at_the_rate_alpha():
    curve = power_curve(
        PowerModel(effect=0.0), [100], alpha=0.1, simulations=300, n_permutations=200
    )
    assert curve.loc[0, "power"] == pytest.approx(0.1, abs=0.05)


def test_power_grows_with_the_number_of_workers_and_the_needed_number_is_found():
    curve = power_curve(PowerModel(effect=0.4), [10, 200], simulations=60, n_permutations=200)
    low, high = curve["power"]
    assert high > low
    assert high >= 0.9
    assert workers_needed(curve, target=0.8) == 200
    assert workers_needed(curve, target=1.01) is None


def test_the_same_seed_gives_the_same_curve():
    args = (PowerModel(effect=0.2), [40])
    first = power_curve(*args, simulations=20, n_permutations=100, random_state=3)
    again = power_curve(*args, simulations=20, n_permutations=100, random_state=3)
    assert first.equals(again)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"alpha": 1.5}, "alpha"), ({"simulations": 0}, "simulations")],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(AnalysisError, match=message):
        power_curve(PowerModel(), [50], **kwargs)


def test_the_command_prints_the_curve_and_the_workers_needed():
    out = io.StringIO()
    call_command(
        "power", effect=0.5, alpha=0.1, workers="20,300", simulations=30, permutations=100,
        stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "power" in text
    assert "300 workers reach 80% power for a 50.0% gain at alpha 0.1" in text
    with pytest.raises(CommandError, match="comma-separated integers"):
        call_command("power", effect=0.1, workers="many")
    with pytest.raises(CommandError, match="n_classes must be >= 4"):
        call_command("power", effect=0.1, classes=2)
