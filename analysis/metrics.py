"""Per-task metrics from a worker's events: nP, claimed positives, precision, nA, T, rounds.

Seed 001 section 4 names the main metric, "the number of images containing the target type
that have been retrieved at the end of the experiment" (nP), the number of adjudications (nA)
and the time taken (T); seed 000 Eq. 5 the top-N retrieval accuracy after each IQR round
(:func:`retrieval.accuracy.retrieval_accuracy`, the one implementation of Eq. 5).

nA is, as seed 001 section 4 counts it, "the number of images adjudicated": the images holding
a relevant or not-relevant judgement at the end of the task (an image judged twice, or judged
and withdrawn, counts once or not at all). Every judgement event, changes of mind included, is
a separate metric under its own name, ``judgement_events``.

An event is a mapping (or a DataFrame row) with ``type`` (the ``Event.Type`` values of
``studyplatform.studies.models``: ``shown``, ``marked_relevant``, ``marked_not_relevant``,
``unmarked``, ``refine``, ``task_end``; others are ignored), ``image`` (archive image id or
None), ``time`` (a ``datetime`` or seconds as a float) and optionally ``iqr_round``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from analysis.frame import AnalysisError
from retrieval.accuracy import retrieval_accuracy

__all__ = ["TaskMetrics", "accuracy_per_round", "task_metrics"]

_JUDGEMENTS = {"marked_relevant": True, "marked_not_relevant": False}


@dataclass(frozen=True)
class TaskMetrics:
    """Metrics of one search task (the per-task columns of ``analysis.frame``).

    Attributes
    ----------
    nP : int
        Images marked relevant at the end whose annotations contain the target class.
    claimed_positives : int
        Images marked relevant at the end.
    precision : float
        ``nP / claimed_positives`` in [0, 1]; NaN when nothing was claimed (written empty).
    nA : int
        Images adjudicated (seed 001): images holding a relevant or not-relevant judgement
        at the end.
    judgement_events : int
        Every ``marked_relevant`` and ``marked_not_relevant`` event, so a change of mind
        counts again (not the paper's nA).
    T : float
        Seconds from the first ``shown`` event to ``task_end`` (or to the last event).
    rounds_used : int
        IQR refines asked for.
    """

    nP: int
    claimed_positives: int
    precision: float
    nA: int
    T: float
    rounds_used: int
    judgement_events: int

    def as_dict(self) -> dict[str, Any]:
        """The metrics as a dict keyed by the per-task column names."""
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(f.name for f in fields(TaskMetrics))


def _seconds(value: Any) -> float:
    if type(value) is float or type(value) is int:  # the common case, checked first
        seconds = float(value)
    elif isinstance(value, datetime | pd.Timestamp):
        return float(pd.Timestamp(value).timestamp())
    else:
        try:
            seconds = float(value)
        except (TypeError, ValueError) as exc:
            raise AnalysisError(f"event time {value!r} is neither a datetime nor seconds") from exc
    if not math.isfinite(seconds):
        raise AnalysisError(f"event time {value!r} is not finite")
    return seconds


def _records(events: Iterable[Mapping[str, Any]] | pd.DataFrame) -> list[Mapping[str, Any]]:
    if isinstance(events, pd.DataFrame):
        return events.to_dict("records")
    return list(events)


def task_metrics(
    events: Iterable[Mapping[str, Any]] | pd.DataFrame,
    image_classes: Mapping[Any, Iterable[Any]],
    target_class: Any,
) -> TaskMetrics:
    """Compute one task's metrics from its events.

    Parameters
    ----------
    events : iterable of mappings, or DataFrame
        The task's events (see the module docstring), in any order; sorted here by time
        (stable, so equal times keep their given order).
    image_classes : mapping of image id to iterable of class ids
        Annotated classes of every judged image (the ground truth for nP).
    target_class : hashable
        The class the worker searches for.

    Returns
    -------
    TaskMetrics

    Raises
    ------
    AnalysisError
        If no results were shown, an event time is invalid, or a judged image is missing
        from ``image_classes``.
    """
    records = _records(events)
    times = [_seconds(e.get("time")) for e in records]
    timed = [(times[i], i, records[i]) for i in sorted(range(len(records)), key=times.__getitem__)]
    shown = [t for t, _, e in timed if e.get("type") == "shown"]
    if not shown:
        raise AnalysisError("the task has no 'shown' event: no results were ever shown")
    state: dict[Any, bool] = {}
    judgements = 0
    refines = 0
    max_round = 0
    end = None
    for time, _, event in timed:
        kind = event.get("type")
        if kind in _JUDGEMENTS:
            state[event.get("image")] = _JUDGEMENTS[kind]
            judgements += 1
        elif kind == "unmarked":
            state.pop(event.get("image"), None)
        elif kind == "refine":
            refines += 1
        elif kind == "task_end" and end is None:
            end = time
        round_number = event.get("iqr_round")
        if kind == "shown" and round_number is not None and not pd.isna(round_number):
            max_round = max(max_round, int(round_number))
    relevant = [image for image, is_relevant in state.items() if is_relevant]
    unknown = [image for image in relevant if image not in image_classes]
    if unknown:
        raise AnalysisError(f"no annotations for judged image(s) {unknown[:5]}")
    n_positive = sum(target_class in set(image_classes[image]) for image in relevant)
    claimed = len(relevant)
    end = timed[-1][0] if end is None else end
    return TaskMetrics(
        nP=int(n_positive),
        claimed_positives=claimed,
        precision=n_positive / claimed if claimed else float("nan"),
        nA=len(state),
        T=max(0.0, end - shown[0]),
        rounds_used=max(refines, max_round),
        judgement_events=judgements,
    )


def accuracy_per_round(
    rankings: Sequence[Sequence[Any]],
    image_classes: Mapping[Any, Iterable[Any]],
    target_class: Any,
    *,
    n: int = 50,
) -> dict[str, float]:
    """Eq. 5 of seed 000 after each round: ``{"acc_round_0": ..., "acc_round_1": ...}``.

    ``rankings[r]`` is the ranking round ``r`` produced (0 = the initial search), best first:
    its top ``n`` whether shown to the worker or not. Every image of a top ``n`` must be in
    ``image_classes`` (AnalysisError otherwise).
    """
    out = {}
    for r, ranking in enumerate(rankings):
        top = list(ranking)[:n]
        missing = [image for image in top if image not in image_classes]
        if missing:
            raise AnalysisError(f"no annotations for ranked image(s) {missing[:5]}")
        if len(set(top)) != len(top):
            raise AnalysisError(f"round {r}: the ranking lists an image twice in its top {n}")
        # Eq. 5 through its one implementation: rows 0..len(top)-1, relevant where A_i holds l
        holding = np.array([target_class in set(image_classes[image]) for image in top], bool)
        out[f"acc_round_{r}"] = retrieval_accuracy(np.arange(len(top)), holding, n=n)
    return out
