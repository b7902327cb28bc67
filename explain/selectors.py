"""Reads of saliency maps for studies: the precompute plan, its progress, the overlay of a pair.

What a study needs
------------------
Every query used under a with-XAI condition needs a map for every image of its candidate pool
(:func:`studyplatform.studies.selectors.pools.candidate_pool`), under that condition's method config.
With ``search.scope: archive`` this is the warm start of a study whose refine rounds compute the
maps of new results on demand; ``search.warm_start_neighbours`` adds the nearest neighbours of
each query's first results (the likely results of its rounds).
The queries used under a condition are read from the study's task pairs (``query_a`` under
``condition_a``, ``query_b`` under ``condition_b``). A study without any task pair yet (its
pairs are generated later) counts every one of its queries under every with-XAI condition, so
the maps can be precomputed before the pairs exist; once pairs exist, a with-XAI condition
that no pair uses needs no map.

Matching stored maps without the backbone
-----------------------------------------
A ``SaliencyMap`` stores the *full* method config (every parameter, and the backbone's
normalisation filled in, see ``explain.services.maps``) and its hash ``config_key``. A
condition stores only what its spec gave. These selectors find a condition's maps without
building the backbone (a web process showing a HIT page should not load a network): the
condition's config is completed with the method's defaults, and a stored config matches when
it agrees on every parameter except the ones the backbone fills in (``mean``/``std``, when the
condition does not give them). Within one feature set those are the same for every map, so the
match is exact.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from django.db.models import QuerySet

from studyplatform.studies.models import Condition, Study
from studyplatform.studies.selectors.pools import candidate_pool

from .models import SaliencyMap
from .registry import get_method, method_from_config
from .registry import method_config as config_of

__all__ = [
    "PlanGroup",
    "SaliencyPlan",
    "SaliencyProgress",
    "condition_method_config",
    "saliency_maps_of_study",
    "saliency_overlay_key",
    "saliency_overlay_keys",
    "saliency_plan",
    "saliency_progress",
    "saliency_progress_detail",
]

# Parameters the services fill from the backbone's preprocessing when a config leaves them out.
_BACKBONE_FILLED = ("mean", "std")


def condition_method_config(condition: Condition) -> dict:
    """``{"method": condition.method, **condition.method_config}``, every default filled in.

    The backbone's normalisation (``mean``/``std``) is left out unless the condition gives it.
    ValueError naming the condition for a no-XAI condition, an unknown method or parameter, or
    a ``method_config`` naming another method than ``condition.method``.
    """
    if not condition.method:
        raise ValueError(f"condition {condition} has no explanation method (no-XAI)")
    given = dict(condition.method_config or {})
    named = given.pop("method", condition.method)
    if named != condition.method:
        raise ValueError(
            f"condition {condition}: method_config names method {named!r} but the condition's "
            f"method is {condition.method!r}"
        )
    try:
        full = config_of(method_from_config({"method": condition.method, **given}))
    except ValueError as error:
        raise ValueError(f"condition {condition}: {error}") from None
    parameters = inspect.signature(get_method(condition.method)).parameters
    for name in _BACKBONE_FILLED:
        if name in parameters and name not in given:
            full.pop(name, None)
    return json.loads(json.dumps(full))  # tuples as lists, as stored


def _matches(stored: dict, requested: dict) -> bool:
    """Whether a stored full config is ``requested`` with backbone-filled parameters added."""
    extra = set(stored) - set(requested)
    if not extra <= set(_BACKBONE_FILLED):
        return False
    return all(stored.get(name) == value for name, value in requested.items())


def _config_keys(*, feature_set_id: int, requested: dict) -> list[str]:
    """``config_key`` of the stored maps of ``feature_set_id`` whose config is ``requested``."""
    keys = (
        SaliencyMap.objects.filter(feature_set_id=feature_set_id, method=requested["method"])
        .order_by()
        .values_list("config_key", flat=True)
        .distinct()
    )
    found = []
    for key in keys:
        stored = (
            SaliencyMap.objects.filter(feature_set_id=feature_set_id, config_key=key)
            .values_list("method_config", flat=True)
            .first()
        )
        if stored is not None and _matches(stored, requested):
            found.append(key)
    return found


@dataclass(frozen=True)
class PlanGroup:
    """The maps of one method config in a study.

    Attributes
    ----------
    method_config : dict
        :func:`condition_method_config` of the conditions (they share it).
    conditions : tuple of str
        Names of the with-XAI conditions with this config (usually one).
    pairs : frozenset of (int, int)
        (query image id, result image id), archive image ids: every pool image of every query
        used under one of ``conditions``.
    """

    method_config: dict
    conditions: tuple[str, ...]
    pairs: frozenset[tuple[int, int]]

    def chunks(self, *, skip: Iterable[tuple[int, int]] = ()) -> dict[int, list[int]]:
        """The pairs not in ``skip``, by result image: ``{result id: [query ids, sorted]}``."""
        skipped = set(skip)
        chunks: dict[int, list[int]] = {}
        for query_id, result_id in sorted(self.pairs):
            if (query_id, result_id) not in skipped:
                chunks.setdefault(result_id, []).append(query_id)
        return chunks


@dataclass(frozen=True)
class SaliencyPlan:
    """Every map a study needs, grouped by method config (see the module docstring).

    ``queries_from`` is ``"task_pairs"``, or ``"all_queries"`` when the study had no task pair.
    """

    study_id: int
    feature_set_id: int
    queries_from: str
    groups: tuple[PlanGroup, ...] = field(default=())

    @property
    def total(self) -> int:
        """The number of maps of the plan."""
        return sum(len(group.pairs) for group in self.groups)


def _warm_neighbours(*, study: Study, query, pool: list[int]) -> list[int]:
    """The ``study.warm_start_neighbours`` nearest images of each of the query's first results
    (the likely results of its refine rounds), outside the pool and the query; [] when 0."""
    k = study.warm_start_neighbours
    if not k:
        return []
    from retrieval.search import top_k_batch
    from retrieval.selectors.features import feature_set_arrays, feature_set_rows

    features, ids = feature_set_arrays(feature_set=study.feature_set)
    first = pool[: study.results_per_round]
    rows = feature_set_rows(feature_set=study.feature_set, image_ids=first)
    skip = feature_set_rows(feature_set=study.feature_set, image_ids=[query.image_id, *pool])
    found, _ = top_k_batch(
        features, np.asarray(features[rows]), k, metric=study.distance, exclude=skip
    )
    return sorted({int(ids[row]) for row in found.ravel()})


def saliency_plan(*, study: Study) -> SaliencyPlan:
    """The maps ``study`` needs before a worker sees a with-XAI task (module docstring).

    Runs one nearest-neighbour search per with-XAI query (its candidate pool). ValueError
    naming the condition if a with-XAI condition's method config is invalid.
    """
    conditions = [c for c in study.conditions.all() if c.is_xai]
    pairs = list(study.task_pairs.select_related("query_a", "query_b"))
    used: dict[int, set] = {c.pk: set() for c in conditions}
    if pairs:
        queries_from = "task_pairs"
        for pair in pairs:
            for query, condition_id in (
                (pair.query_a, pair.condition_a_id),
                (pair.query_b, pair.condition_b_id),
            ):
                if condition_id in used:
                    used[condition_id].add(query)
    else:
        queries_from = "all_queries"
        every = set(study.queries.all())
        for condition in conditions:
            used[condition.pk] = set(every)
    pools: dict[int, list[int]] = {}
    by_config: dict[str, tuple[dict, list[str], set]] = {}
    for condition in conditions:
        config = condition_method_config(condition)
        canonical = json.dumps(config, sort_keys=True)
        _, names, group_pairs = by_config.setdefault(canonical, (config, [], set()))
        names.append(condition.name)
        for query in sorted(used[condition.pk], key=lambda q: q.pk):
            if query.pk not in pools:
                pools[query.pk] = candidate_pool(study=study, query=query)
                pools[query.pk] += _warm_neighbours(study=study, query=query, pool=pools[query.pk])
            group_pairs.update((query.image_id, result_id) for result_id in pools[query.pk])
    groups = tuple(
        PlanGroup(method_config=config, conditions=tuple(names), pairs=frozenset(group_pairs))
        for config, names, group_pairs in by_config.values()
    )
    return SaliencyPlan(
        study_id=study.pk,
        feature_set_id=study.feature_set_id,
        queries_from=queries_from,
        groups=groups,
    )


def existing_pairs(*, plan: SaliencyPlan, group: PlanGroup, rendered: bool = False) -> set:
    """The (query id, result id) pairs of ``group`` whose map exists (and, if ``rendered``,
    whose overlay is drawn)."""
    keys = _config_keys(feature_set_id=plan.feature_set_id, requested=group.method_config)
    if not keys:
        return set()
    rows = SaliencyMap.objects.filter(
        feature_set_id=plan.feature_set_id,
        config_key__in=keys,
        query_id__in=sorted({query_id for query_id, _ in group.pairs}),
    )
    if rendered:
        rows = rows.exclude(overlay_key="")
    return set(rows.values_list("query_id", "result_id")) & group.pairs


@dataclass(frozen=True)
class SaliencyProgress:
    """Maps of a study's plan: ``done`` exist, ``rendered`` also have their overlay."""

    done: int
    rendered: int
    total: int


def saliency_progress_detail(*, study: Study, plan: SaliencyPlan | None = None) -> SaliencyProgress:
    """Counts of the plan's maps that exist and that are rendered (see :func:`saliency_plan`)."""
    plan = saliency_plan(study=study) if plan is None else plan
    done = rendered = 0
    for group in plan.groups:
        done += len(existing_pairs(plan=plan, group=group))
        rendered += len(existing_pairs(plan=plan, group=group, rendered=True))
    return SaliencyProgress(done=done, rendered=rendered, total=plan.total)


def saliency_progress(*, study: Study) -> tuple[int, int]:
    """``(done, total)``: maps of the study's plan that exist, and all of them."""
    progress = saliency_progress_detail(study=study)
    return progress.done, progress.total


def _condition_keys(study: Study, condition: Condition) -> list[str]:
    _check_condition(study, condition)
    if not condition.is_xai:
        return []
    return _config_keys(
        feature_set_id=study.feature_set_id, requested=condition_method_config(condition)
    )


def _check_condition(study: Study, condition: Condition) -> None:
    if condition.study_id != study.pk:
        raise ValueError(f"condition {condition} is not a condition of study {study}")


def saliency_overlay_keys(
    *, study: Study, condition: Condition, query_image_id: int, result_image_ids: Iterable[int]
) -> dict[int, str | None]:
    """Overlay storage keys of several results of one query (one page of a HIT).

    ``query_image_id`` and ``result_image_ids`` are archive image ids (``retrieval.Image``;
    for a search task, ``task.query.image_id``). Returns ``{result id: key or None}`` in the
    order asked: None when the overlay is not rendered yet, and for every result under a
    no-XAI condition. ``default_storage.url(key)`` gives the URL to show. One indexed query
    on (feature set, query), no backbone.
    """
    _check_condition(study, condition)
    wanted = list(dict.fromkeys(int(i) for i in result_image_ids))
    found: dict[int, str] = {}
    if condition.is_xai and wanted:
        requested = condition_method_config(condition)
        rows = (
            SaliencyMap.objects.filter(
                feature_set_id=study.feature_set_id,
                query_id=query_image_id,
                result_id__in=wanted,
                method=requested["method"],
            )
            .exclude(overlay_key="")
            .values_list("result_id", "overlay_key", "method_config")
        )
        found = {
            result_id: overlay_key
            for result_id, overlay_key, stored in rows
            if _matches(stored, requested)
        }
    return {result_id: found.get(result_id) for result_id in wanted}


def saliency_overlay_key(
    *, study: Study, condition: Condition, query_image_id: int, result_image_id: int
) -> str | None:
    """The overlay's storage key of one (query, result) pair, or None (not yet rendered, or a
    no-XAI condition). Image ids as in :func:`saliency_overlay_keys`."""
    return saliency_overlay_keys(
        study=study,
        condition=condition,
        query_image_id=query_image_id,
        result_image_ids=[result_image_id],
    )[int(result_image_id)]


def saliency_maps_of_study(*, study: Study) -> QuerySet[SaliencyMap]:
    """The maps of ``study``'s with-XAI conditions for its query images (any result).

    Cheap (no nearest-neighbour search), so it may include maps of images outside the pools
    computed for the same queries and configs by other means; the admin's study filter.
    """
    keys: list[str] = []
    for condition in study.conditions.all():
        keys += _condition_keys(study, condition)
    return SaliencyMap.objects.filter(
        feature_set_id=study.feature_set_id,
        config_key__in=keys,
        query_id__in=study.queries.values_list("image_id", flat=True),
    )
