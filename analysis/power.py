"""Power of the stratified permutation test by simulation of per-task data (no web stack).

Model of one simulated study (documented defaults follow seed 001):

* ``n_classes`` query classes (24), the first half the tested group (e.g. Cluttered). Class
  ``c`` has a mean number of positives found without explanations
  ``mu_c = base_mean * LogNormal(0, class_sd)`` (``base_mean`` 18: seed 001 section 5.1 reports
  17.7-18.9 positives per query).
* Each worker does one task pair: two different classes drawn at random, one task with and one
  without explanations (which one at random), as the protocol counterbalances them.
* A task's nP is negative-binomial: ``Poisson(mu_c * (1 + effect if with-XAI and the class is in
  the group) * Gamma(1 / cv^2, cv^2))``, so its mean is ``mu_c`` (times the gain) and its
  coefficient of variation about ``cv`` (0.5) beyond the Poisson noise.
* The test is ``analysis.permutation.permutation_test`` on the group's tasks, strata = query
  classes, ``alternative="greater"``; a simulated study counts as a detection when
  ``p <= alpha``. Power = detections / simulations, with its binomial standard error.

The observed gain ``mean_with / mean_without - 1`` is the statistic, as in Table 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.frame import AnalysisError
from analysis.permutation import permutation_test

__all__ = ["PowerModel", "power_curve", "simulate_tasks", "workers_needed"]


@dataclass(frozen=True)
class PowerModel:
    """Parameters of the simulated per-task data (module docstring)."""

    effect: float = 0.065
    n_classes: int = 24
    base_mean: float = 18.0
    class_sd: float = 0.3
    cv: float = 0.5

    def __post_init__(self) -> None:
        if self.n_classes < 4:
            raise AnalysisError(f"n_classes must be >= 4, got {self.n_classes}")
        if self.effect <= -1:
            raise AnalysisError(f"effect must be > -1 (a relative gain), got {self.effect}")
        if self.base_mean <= 0 or self.cv <= 0 or self.class_sd < 0:
            raise AnalysisError("base_mean and cv must be > 0 and class_sd >= 0")


def simulate_tasks(model: PowerModel, n_workers: int, rng: np.random.Generator) -> pd.DataFrame:
    """One simulated study: 2 * ``n_workers`` rows with ``query_class`` (int), ``is_xai``,
    ``in_group`` and ``nP``."""
    means = model.base_mean * rng.lognormal(0.0, model.class_sd, size=model.n_classes)
    # two distinct classes per worker: the second is offset from the first by 1..n-1
    first = rng.integers(0, model.n_classes, size=n_workers)
    second = (first + rng.integers(1, model.n_classes, size=n_workers)) % model.n_classes
    xai_first = rng.random(n_workers) < 0.5
    classes = np.concatenate([first, second])
    is_xai = np.concatenate([xai_first, ~xai_first])
    in_group = classes < model.n_classes // 2
    gain = np.where(is_xai & in_group, 1.0 + model.effect, 1.0)
    shape = 1.0 / model.cv**2
    rate = means[classes] * gain * rng.gamma(shape, 1.0 / shape, size=classes.size)
    return pd.DataFrame(
        {"query_class": classes, "is_xai": is_xai, "in_group": in_group, "nP": rng.poisson(rate)}
    )


def power_curve(
    model: PowerModel,
    workers: Iterable[int],
    *,
    alpha: float = 0.1,
    simulations: int = 200,
    n_permutations: int = 1000,
    random_state: int | None = 0,
) -> pd.DataFrame:
    """Estimated power of the stratified test at each number of workers.

    Parameters
    ----------
    model : PowerModel
    workers : iterable of int
        Numbers of workers (each gives two data points) to evaluate.
    alpha : float in (0, 1)
    simulations : int
        Simulated studies per number of workers.
    n_permutations : int
        Permutations per test (1,000 resolve p-values near 0.1 to about +-0.01).
    random_state : int or None

    Returns
    -------
    DataFrame
        One row per number of workers: ``workers``, ``power``, ``se`` (binomial standard
        error), ``mean_gain`` (mean observed gain), ``simulations``, ``skipped`` (simulated
        studies whose test could not run, e.g. a group with one data point; not detections).
    """
    if not 0 < alpha < 1:
        raise AnalysisError(f"alpha must be in (0, 1), got {alpha}")
    if simulations < 1:
        raise AnalysisError(f"simulations must be >= 1, got {simulations}")
    workers = sorted({int(n) for n in workers})
    if not workers or workers[0] < 2:
        raise AnalysisError("numbers of workers must be >= 2")
    rng = np.random.default_rng(random_state)
    rows = []
    for n in workers:
        hits, skipped, gains = 0, 0, []
        for _ in range(simulations):
            data = simulate_tasks(model, n, rng)
            group = data[data["in_group"]]
            try:
                result = permutation_test(
                    group["nP"].to_numpy(), group["is_xai"].to_numpy(), group["query_class"].to_numpy(),
                    n_permutations=n_permutations, alternative="greater", random_state=rng,
                )  # fmt: skip
            except AnalysisError:
                skipped += 1
                continue
            gains.append(result.statistic)
            hits += result.pvalue <= alpha
        power = hits / simulations
        rows.append({
            "workers": n, "power": power, "se": float(np.sqrt(power * (1 - power) / simulations)),
            "mean_gain": float(np.mean(gains)) if gains else np.nan,
            "simulations": simulations, "skipped": skipped,
        })  # fmt: skip
    return pd.DataFrame(rows)


def workers_needed(curve: pd.DataFrame, *, target: float = 0.8) -> int | None:
    """The smallest number of workers in ``curve`` whose power reaches ``target`` (None if
    none does)."""
    reached = curve[curve["power"] >= target]
    return None if reached.empty else int(reached["workers"].min())
