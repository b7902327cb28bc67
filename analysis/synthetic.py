"""Synthetic per-task tables and Likert responses shaped like seed 001's study.

For tests, benchmarks and rehearsals: each HIT is one worker doing two search tasks, one per
condition, on two different query classes from seed 001's 24 (section 5.1), in random
order. Attribute levels loosely follow section 5 (about 18 positives, 35 adjudications and
500 s per task); ``gain`` multiplies nP of with-XAI tasks in Cluttered classes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.frame import TASK_COLUMNS
from analysis.superclasses import PAPER_SUPERCLASSES

__all__ = ["synthetic_likert", "synthetic_tasks"]


def synthetic_tasks(
    n_hits: int,
    *,
    gain: float = 0.065,
    rounds: int = 3,
    random_state: int | np.random.Generator | None = 0,
) -> pd.DataFrame:
    """A per-task table of ``2 * n_hits`` rows in the ``analysis.frame`` schema.

    Parameters
    ----------
    n_hits : int
        Number of HITs (workers); each yields one with-XAI and one no-XAI task.
    gain : float, default 0.065
        Relative nP gain of with-XAI tasks in Cluttered classes (seed 001: 6.5 %).
    rounds : int, default 3
        Number of ``acc_round_<r>`` columns (round 0 = initial search).
    random_state : int, Generator or None

    Returns
    -------
    DataFrame
        Also holds ``superclass``, ``clutter`` and ``size`` per class (clutter and size
        chosen so that the top halves give the paper's cells).
    """
    rng = np.random.default_rng(random_state)
    classes = [name for cell in PAPER_SUPERCLASSES.values() for name in cell]
    cell_of = {name: cell for cell, names in PAPER_SUPERCLASSES.items() for name in names}
    # Cluttered classes get clutter 4-6, uncluttered 2-3.5; large classes size 0.1-0.4.
    clutter = {
        n: (4.0 + 2.0 * rng.random()) if cell_of[n][0] == "C" else 2.0 + 1.5 * rng.random()
        for n in classes
    }
    size = {
        n: (0.1 + 0.3 * rng.random()) if cell_of[n][1] == "L" else 0.01 + 0.05 * rng.random()
        for n in classes
    }
    pairs = np.array([rng.choice(len(classes), size=2, replace=False) for _ in range(n_hits)])
    xai_first = rng.random(n_hits) < 0.5
    rows = []
    for hit in range(n_hits):
        for slot in range(2):  # slot 0 = with-XAI class, slot 1 = no-XAI class
            is_xai = slot == 0
            name = classes[pairs[hit, slot]]
            boost = 1.0 + gain if is_xai and cell_of[name][0] == "C" else 1.0
            n_p = int(rng.poisson(17.5 * boost))
            claimed = n_p + int(rng.poisson(2))
            n_a = claimed + int(rng.poisson(15))
            seconds = float(np.round(rng.gamma(8.0, 60.0) * (1.3 if is_xai else 1.0), 3))
            used = int(rng.integers(0, rounds))
            acc = np.clip(0.3 + 0.15 * np.arange(rounds) + 0.05 * rng.standard_normal(rounds), 0, 1)
            row = {
                "study": "synthetic",
                "worker": f"W{hit:05d}",
                "assignment": f"A{hit:05d}",
                "task_pair": f"P{hit % 148:03d}",
                "position": 1 + int(is_xai != xai_first[hit]),
                "condition": "sbsm" if is_xai else "no-xai",
                "is_xai": is_xai,
                "query_image": f"img-{pairs[hit, slot]:02d}-{hit % 7}",
                "query_class": name,
                "nP": n_p,
                "claimed_positives": claimed,
                "precision": n_p / claimed if claimed else np.nan,
                "nA": n_a,
                "T": seconds,
                "rounds_used": used,
                "superclass": cell_of[name],
                "clutter": clutter[name],
                "size": size[name],
            }
            row.update({f"acc_round_{r}": (acc[r] if r <= used else np.nan) for r in range(rounds)})
            rows.append(row)
    frame = pd.DataFrame(rows)
    extra = [c for c in frame.columns if c not in TASK_COLUMNS]
    return frame[[*TASK_COLUMNS, *extra]]


def synthetic_likert(tasks: pd.DataFrame, *, random_state=0) -> pd.DataFrame:
    """Answers to three 6-point statements, one per task of ``tasks`` (Likert schema)."""
    rng = np.random.default_rng(random_state)
    rows = []
    for task in tasks.itertuples(index=False):
        for question, shift in (
            ("prefer_with_xai", 0.4),
            ("understood_questions", 1.5),
            ("easy_to_use", 0.2),
        ):
            value = int(
                np.clip(
                    np.round(3.5 + shift * (1 if task.is_xai else 0.5) + rng.normal(0, 1.2)), 1, 6
                )
            )
            rows.append({"worker": task.worker, "question": question, "value": value, "points": 6,
                         "condition": task.condition, "is_xai": task.is_xai,
                         "query_class": task.query_class})  # fmt: skip
    return pd.DataFrame(rows)
