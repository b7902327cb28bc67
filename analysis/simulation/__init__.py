"""Simulated workers for a dry run of a study through its real worker pages.

Each simulated worker is an oracle that knows the archive's annotations and errs at
configurable rates (:class:`WorkerModel`). :func:`study_simulate` drives the study's worker
endpoints in-process through the project's WSGI application (one browser session of cookies
per worker, :class:`~analysis.simulation.transport.WsgiTransport`); the rehearsal's driver
(:mod:`analysis.simulation.driver`) runs the same workers over HTTP against a served platform,
in real time with scaled think times. A worker: opens
the HIT in lab mode (``/lab/<study>/`` with a participant code) or MTurk mode (``/hit/<study>/``
with ExternalQuestion parameters), finishes the tutorial, begins each task, judges every result
shown, refines while refines are left (or stops when the task ends on reaching its target),
answers the questionnaires and submits. Nothing is written except through those endpoints.

Timestamps: every worker lives on a virtual clock that advances by the time each action takes
(``seconds_per_judgement`` with log-normal jitter, slower with explanations by
``xai_time_factor``, plus reading, refine and answering times). While a worker acts, the
server's clock (``django.utils.timezone.now``) is that virtual clock, so ``server_time``,
``started_at`` and ``ended_at`` and hence the analysis' T are what a real worker of that speed
would produce; the events the page sends carry ``client_time`` on the same clock plus a small
per-worker skew, as a browser's would. Workers arrive ``arrival_seconds`` apart, the first at
``start`` (default: far enough in the past that the whole run ends before now).

Randomness: worker ``i`` of seed ``s`` draws from ``numpy.random.default_rng([s, i])``, so the
same seed on the same study gives the same judgements, times and answers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any
from unittest import mock

from .errors import SimulationError

if TYPE_CHECKING:
    from studyplatform.studies.models import Study

__all__ = ["SimulationError", "SimulationReport", "WorkerModel", "study_simulate"]


@dataclass(frozen=True)
class WorkerModel:
    """How a simulated worker judges, how fast, and how it answers questionnaires.

    Attributes
    ----------
    miss_rate : float in [0, 1]
        Probability of marking a true positive not relevant.
    false_mark_rate : float in [0, 1]
        Probability of marking an image without the target relevant.
    change_rate : float in [0, 1]
        Probability of first giving the opposite judgement and correcting it (counts in nA).
    seconds_per_judgement : float > 0
        Median seconds per judgement without explanations.
    xai_miss_reduction : float in [0, 1]
        Benefit of explanations: the miss rate is ``miss_rate * (1 - xai_miss_reduction)``.
    xai_time_factor : float > 0
        Judgements take this many times longer with explanations (seed 001: T +27-34 %).
    likert_mean : float in [0, 1]
        Mean answer on the normalised 0-1 scale (seed 001 Figure 5).
    xai_likert_shift : float
        Added to ``likert_mean`` for answers about a with-XAI task.
    """

    miss_rate: float = 0.15
    false_mark_rate: float = 0.05
    change_rate: float = 0.03
    seconds_per_judgement: float = 5.0
    xai_miss_reduction: float = 0.0
    xai_time_factor: float = 1.3
    likert_mean: float = 0.6
    xai_likert_shift: float = 0.1
    intro_seconds: float = 15.0
    refine_seconds: float = 4.0
    answer_seconds: float = 6.0

    def __post_init__(self) -> None:
        for name in (
            "miss_rate",
            "false_mark_rate",
            "change_rate",
            "xai_miss_reduction",
            "likert_mean",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"WorkerModel.{name} must be in [0, 1], got {value}")
        for name in ("seconds_per_judgement", "xai_time_factor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"WorkerModel.{name} must be > 0, got {getattr(self, name)}")
        for name in ("intro_seconds", "refine_seconds", "answer_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"WorkerModel.{name} must be >= 0, got {getattr(self, name)}")

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class SimulationReport:
    """What a simulation did: workers submitted, refused (with the page's reason) and requests."""

    submitted: int = 0
    refused: list[str] = field(default_factory=list)
    requests: int = 0
    judgements: int = 0
    mode: str = "lab"


def study_simulate(
    *,
    study: Study,
    workers: int,
    seed: int = 0,
    model: WorkerModel | None = None,
    mode: str = "lab",
    start: dt.datetime | None = None,
    arrival_seconds: float = 45.0,
    accept: Callable[[int], dict | None] | None = None,
    submitted: Callable[[int, dict], None] | None = None,
    transport: Callable[[int], Any] | None = None,
) -> SimulationReport:
    """Run ``workers`` simulated workers through ``study``'s worker pages (module docstring).

    Parameters
    ----------
    study : Study
        A live study whose worker URLs (``hit``, ``lab``, ``hit-*``) are installed.
    workers : int >= 1
    seed : int
    model : WorkerModel, optional
    mode : {"lab", "mturk"}
        How the HIT is opened. MTurk mode queues the study's participation grant when the
        study has MTurk settings, as a real accept would.
    start : aware datetime, optional
        Arrival of the first worker.
    arrival_seconds : float
        Gap between arrivals.
    accept : callable, optional
        MTurk mode: ``accept(index)`` accepts the HIT on an MTurk endpoint for worker ``index``
        and returns the page's parameters (``assignmentId``, ``hitId``, ``workerId``,
        ``turkSubmitTo``), or None when MTurk refused; default: made-up ids.
    submitted : callable, optional
        ``submitted(index, params)`` after a worker submitted on the platform: the form POST
        to ``{turkSubmitTo}/mturk/externalSubmit`` a browser would make.
    transport : callable, optional
        ``transport(index)`` gives worker ``index``'s browser (``analysis.simulation.transport``);
        default: a :class:`~analysis.simulation.transport.WsgiTransport` on this process's
        WSGI application.

    Returns
    -------
    SimulationReport
        Workers refused by the study (no cell left, study not live) are listed, not raised.

    Raises
    ------
    SimulationError
        A worker page answered an error a worker could not go on from.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if mode not in ("lab", "mturk"):
        raise ValueError(f"mode must be 'lab' or 'mturk', got {mode!r}")
    from django.utils import timezone

    from .transport import WsgiTransport
    from .worker import Clock, Worker

    model = model or WorkerModel()
    if transport is None:

        def transport(index: int) -> WsgiTransport:
            return WsgiTransport(study=study.slug, host=_host())

    if start is None:
        budget = workers * arrival_seconds + 6 * 3600
        start = (timezone.now() - dt.timedelta(seconds=budget)).replace(microsecond=0)
    report = SimulationReport(mode=mode)
    truth = truth_lookup(study)
    for index in range(workers):
        clock = Clock(start + dt.timedelta(seconds=index * arrival_seconds))
        params = accept(index) if accept is not None else None
        if accept is not None and params is None:
            report.refused.append(f"worker {index}: MTurk refused the accept")
            continue
        worker = Worker(transport=transport(index), index=index, seed=seed, model=model,
                        clock=clock, truth=truth, report=report, mode=mode,
                        mturk_params=params)  # fmt: skip
        with mock.patch("django.utils.timezone.now", clock.now):
            if worker.open():
                before = report.submitted
                worker.run()
                if submitted is not None and params and report.submitted > before:
                    submitted(index, params)
    return report


def _host() -> str:
    from django.conf import settings

    hosts = [h for h in settings.ALLOWED_HOSTS if h and h not in ("*",) and not h.startswith(".")]
    return hosts[0] if hosts else "localhost"


def truth_lookup(study: Study) -> Callable[[dict], set[int]]:
    """task view -> set of image ids annotated with the task's target class (cached per
    class), from the database."""
    from retrieval.models import Annotation
    from studyplatform.studies.models import SearchTask

    by_class: dict[int, set[int]] = {}
    class_of: dict[int, int] = {}

    def positives(task: dict) -> set[int]:
        task_id = task["id"]
        if task_id not in class_of:
            class_of[task_id] = SearchTask.objects.values_list("query__category_id", flat=True).get(
                pk=task_id
            )
        category = class_of[task_id]
        if category not in by_class:
            rows = Annotation.objects.filter(archive=study.archive_id, category_id=category)
            by_class[category] = set(rows.values_list("image_id", flat=True))
        return by_class[category]

    return positives
