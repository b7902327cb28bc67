"""Per-task metrics from a worker's events: nP, claimed positives, precision, nA, T, rounds.

Seed 001 section 4 names the main metric, "the number of images containing the target type
that have been retrieved at the end of the experiment" (nP), the number of adjudications (nA)
and the time taken (T); seed 000 Eq. 5 the top-N retrieval accuracy after each IQR round.

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

import pandas as pd

from analysis.frame import AnalysisError

__all__ = ["TaskMetrics", "accuracy_per_round", "retrieval_accuracy", "task_metrics"]

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
        Adjudications: final relevant + not-relevant judgements, or every judgement event
        when changes of mind are counted.
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
    *,
    count_changes: bool = False,
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
    count_changes : bool, default False
        False: nA counts the images holding a judgement at the end (a withdrawn judgement
        and a re-judged image count once or not at all). True: nA counts every
        ``marked_relevant`` and ``marked_not_relevant`` event, so a change of mind counts
        again (the study spec chooses).

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
        nA=judgements if count_changes else len(state),
        T=max(0.0, end - shown[0]),
        rounds_used=max(refines, max_round),
    )


def retrieval_accuracy(
    ranking: Sequence[Any],
    image_classes: Mapping[Any, Iterable[Any]],
    target_class: Any,
    *,
    n: int = 50,
) -> float:
    """Top-N retrieval accuracy of one ranking (seed 000, Eq. 5).

    ``sum_i 1[l in A_i] / N`` over the first ``N`` results, with ``l`` the target class and
    ``A_i`` the annotations of result ``i``. A ranking shorter than ``N`` still divides by
    ``N`` (missing results count as misses), as Eq. 5 reads.

    Parameters
    ----------
    ranking : sequence of image ids, best first
    image_classes : mapping of image id to iterable of class ids
    target_class : hashable
    n : int, default 50
        N of Eq. 5 (seed 000 used 50).

    Returns
    -------
    float in [0, 1]
    """
    if n < 1:
        raise AnalysisError(f"N must be >= 1, got {n}")
    top = list(ranking)[:n]
    missing = [image for image in top if image not in image_classes]
    if missing:
        raise AnalysisError(f"no annotations for ranked image(s) {missing[:5]}")
    return sum(target_class in set(image_classes[image]) for image in top) / n


def accuracy_per_round(
    rankings: Sequence[Sequence[Any]],
    image_classes: Mapping[Any, Iterable[Any]],
    target_class: Any,
    *,
    n: int = 50,
) -> dict[str, float]:
    """Eq. 5 of seed 000 after each round: ``{"acc_round_0": ..., "acc_round_1": ...}``.

    ``rankings[r]`` is the ranking shown in round ``r`` (0 = the initial search).
    """
    return {
        f"acc_round_{r}": retrieval_accuracy(ranking, image_classes, target_class, n=n)
        for r, ranking in enumerate(rankings)
    }
