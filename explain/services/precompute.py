"""A study's saliency precompute: plan the missing maps, compute them per result image, render.

:func:`saliency_precompute_study` reads the plan (:func:`explain.selectors.saliency_plan`:
every pool image of every query used under a with-XAI condition), leaves out the maps that
exist, and groups the rest **per result image**: one chunk holds every query that needs that
result under one method config, so SBSM's masked embeddings of the result are computed once and
serve all of them (:func:`explain.services.maps.saliency_precompute_chunk`).

Then, per (feature set, method config) group, the overlays are drawn in the study's overlay
style (:func:`study_overlay_style`, :func:`explain.services.maps.saliency_overlays_render`),
after every map of the group exists, so that a style at the study's scale covers every map.

Two ways to run it:

* queued (the default): after the surrounding transaction commits, one Celery chord per group:
  the chunk tasks on the ``gpu`` queue, then one overlay task on the ``default`` queue. The
  tasks take ids and are idempotent, so a redelivered chunk (``acks_late``) only finishes what
  its killed predecessor left.
* in process (``sync=True``, what ``manage.py precompute_saliency --sync`` does): chunk by
  chunk, each map committed as soon as it is computed, so an interrupted run resumes where it
  stopped; no broker needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from django.db import transaction

from retrieval.models import FeatureSet, Image
from studyplatform.studies.models import Study

from ..render import OverlayStyle
from ..selectors import PlanGroup, SaliencyPlan, existing_pairs, saliency_plan
from .maps import method_config_full, saliency_overlays_render, saliency_precompute_chunk

__all__ = ["PrecomputeReport", "saliency_precompute_study", "study_overlay_style"]

#: ``progress(done, total)``: maps of the plan that exist, after each map computed in process.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PrecomputeReport:
    """What :func:`saliency_precompute_study` found and did.

    Attributes
    ----------
    study_id : int
    queries_from : str
        ``"task_pairs"``, or ``"all_queries"`` when the study had no task pair yet.
    groups : int
        Method configs (one overlay normalisation each).
    total : int
        Maps in the plan.
    existing : int
        Maps of the plan that existed before this call.
    chunks : int
        Result-image chunks holding the missing maps.
    computed : int
        Maps computed in this process (``sync=True``; 0 when queued).
    overlays : int
        Overlays rendered in this process (``sync=True``; 0 when queued).
    enqueued : bool
        Whether tasks were queued (to run after the current transaction commits).
    """

    study_id: int
    queries_from: str
    groups: int
    total: int
    existing: int
    chunks: int
    computed: int = 0
    overlays: int = 0
    enqueued: bool = False

    @property
    def missing(self) -> int:
        """Maps of the plan that did not exist before this call."""
        return self.total - self.existing


def study_overlay_style(*, study: Study) -> OverlayStyle:
    """How the study's overlays are drawn: its spec's ``overlay`` settings over the defaults
    (:class:`explain.render.OverlayStyle`: the papers' look, each map on its own scale).

    ValueError names a bad setting.
    """
    return OverlayStyle.from_config((study.spec or {}).get("overlay"))


def _missing_chunks(
    plan: SaliencyPlan,
) -> tuple[int, list[tuple[PlanGroup, dict[int, list[int]]]]]:
    existing = 0
    work = []
    for group in plan.groups:
        present = existing_pairs(plan=plan, group=group)
        existing += len(present)
        work.append((group, group.chunks(skip=present)))
    return existing, work


def saliency_precompute_study(
    *, study: Study, sync: bool = False, progress: Progress | None = None
) -> PrecomputeReport:
    """Plan a study's missing saliency maps and compute them (queued, or here with ``sync``).

    Idempotent: maps that exist are never computed again, and a study whose maps all exist
    computes nothing (queued, only the overlay tasks run, and they skip overlays already drawn
    at their group's scale).

    Parameters
    ----------
    study : Study
    sync : bool, default False
        Compute in this process, chunk by chunk, then render the overlays; otherwise queue the
        Celery tasks on commit (module docstring).
    progress : callable, optional
        With ``sync``: ``progress(done, total)`` once at the start and after each new map.
        An exception it raises stops the run; the maps committed so far stay.

    Returns
    -------
    PrecomputeReport

    Raises
    ------
    ValueError
        A with-XAI condition whose method config is invalid (named in the message), or weights
        changed since the feature set's extraction; raised before anything is computed.
    """
    style = study_overlay_style(study=study)
    plan = saliency_plan(study=study)
    existing, work = _missing_chunks(plan)
    feature_set = FeatureSet.objects.get(pk=plan.feature_set_id)
    # Resolve every group's full config first: a bad config fails before any work.
    resolved = [
        method_config_full(feature_set=feature_set, method_config=group.method_config)
        for group, _ in work
    ]
    n_chunks = sum(len(chunks) for _, chunks in work)
    report = PrecomputeReport(
        study_id=study.pk,
        queries_from=plan.queries_from,
        groups=len(plan.groups),
        total=plan.total,
        existing=existing,
        chunks=n_chunks,
    )
    if not sync:
        jobs = [
            (group.method_config, config_key, chunks)
            for (group, chunks), (_, config_key) in zip(work, resolved, strict=True)
        ]
        transaction.on_commit(lambda: _enqueue(feature_set.pk, jobs, style.get_config()))
        return replace(report, enqueued=bool(jobs))

    done = existing
    if progress is not None:
        progress(done, plan.total)

    def tick(_row) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, plan.total)

    computed = overlays = 0
    for (group, chunks), (_, config_key) in zip(work, resolved, strict=True):
        images = Image.objects.select_related("directory").in_bulk(
            set(chunks) | {q for queries in chunks.values() for q in queries}
        )
        for result_id, query_ids in chunks.items():
            computed += saliency_precompute_chunk(
                feature_set=feature_set,
                result=images[result_id],
                queries=[images[q] for q in query_ids],
                method_config=group.method_config,
                on_map=tick,
            )
        overlays += saliency_overlays_render(
            feature_set=feature_set, config_key=config_key, style=style
        )
    return replace(report, computed=computed, overlays=overlays)


def _enqueue(
    feature_set_id: int, jobs: list[tuple[dict, str, dict[int, list[int]]]], style: dict
) -> None:
    """One chord per group: the chunks on ``gpu``, then the group's overlays on ``default``."""
    from celery import chord

    from ..tasks import saliency_overlays_render as render_task
    from ..tasks import saliency_precompute_chunk as chunk_task

    for method_config, config_key, chunks in jobs:
        render = render_task.si(feature_set_id, config_key, style)
        if not chunks:
            render.apply_async()
            continue
        header = [
            chunk_task.si(feature_set_id, result_id, query_ids, method_config)
            for result_id, query_ids in chunks.items()
        ]
        chord(header)(render)
