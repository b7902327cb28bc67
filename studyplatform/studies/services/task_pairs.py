"""Task pairs: which two queries, under which two conditions, one worker searches.

Seed 001 section 4: the study's query images are "sampled into task pair image ID tuples; the
first image was the without-XAI image; the second was the with-XAI image", and "the same class
was never presented as both with-XAI and without-XAI for a given user". A pair's two queries
therefore always have different target classes.

Design with more than two conditions
------------------------------------
The pairs compare conditions two at a time. ``design="control_vs_treatment"`` (the default, and
seed 001's design) pairs the study's one no-XAI condition with each with-XAI condition in turn;
``design="all_pairs"`` pairs every two conditions (for comparisons between explanation methods,
seeds 002 and 003). Each such comparison gets ``count`` pairs; ``condition_a`` is the earlier
condition of the study (the no-XAI one under ``control_vs_treatment``).

Balance
-------
Within each condition every query is used ``floor(n / Q)`` or ``ceil(n / Q)`` times, where ``n``
is the number of slots of that condition over all its comparisons and ``Q`` the number of
queries; among queries used equally often in a condition, those of the class least present in
the comparison so far come first (so that no class crowds a comparison), then those used least
over all conditions (so a query left out of one condition is used in another). The pairing
itself is a seeded shuffle followed by swaps that remove every same-class pair; it succeeds
whenever no class fills more than ``count`` of a comparison's ``2 * count`` slots (Hall's
condition for this matching), and otherwise the error names the class.

The planner (:func:`task_pair_plan`) works on plain integers and does not touch the database;
:func:`task_pair_generate` maps the study's rows onto it and writes the pairs.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from django.db import transaction

from ..models import Assignment, Condition, QueryImage, Study, TaskPair

__all__ = [
    "DESIGNS",
    "TaskPairError",
    "TaskPairReport",
    "task_pair_comparisons",
    "task_pair_generate",
    "task_pair_plan",
]

DESIGNS: tuple[str, ...] = ("control_vs_treatment", "all_pairs")


class TaskPairError(ValueError):
    """Task pairs cannot be made (or remade) as asked; the message says why."""


@dataclass(frozen=True)
class TaskPairReport:
    """What :func:`task_pair_generate` produced.

    Attributes
    ----------
    study_id : int
    seed : int
        The seed the pairs were drawn with.
    n_pairs : int
    changed : bool
        False when the study already held exactly these pairs (nothing was written).
    uses : dict
        ``{query_id: {condition_name: times used}}`` for every query of the study.
    spread : dict
        ``{condition_name: (fewest uses, most uses)}`` over the study's queries.
    comparisons : dict
        ``{"a_name/b_name": number of pairs}`` per compared condition pair.
    """

    study_id: int
    seed: int
    n_pairs: int
    changed: bool
    uses: dict[int, dict[str, int]] = field(default_factory=dict)
    spread: dict[str, tuple[int, int]] = field(default_factory=dict)
    comparisons: dict[str, int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        """Every query used equally often, or once more, within each condition."""
        return all(most - fewest <= 1 for fewest, most in self.spread.values())

    def as_dict(self) -> dict:
        return {
            "study_id": self.study_id,
            "seed": self.seed,
            "n_pairs": self.n_pairs,
            "changed": self.changed,
            "balanced": self.balanced,
            "uses": {str(q): dict(u) for q, u in self.uses.items()},
            "spread": {c: list(s) for c, s in self.spread.items()},
            "comparisons": dict(self.comparisons),
        }


# ---------------------------------------------------------------------------------------------
# The planner: plain integers, no database.
# ---------------------------------------------------------------------------------------------


def task_pair_comparisons(*, is_xai: Sequence[bool], design: str) -> list[tuple[int, int]]:
    """Index pairs ``(a, b)`` of the conditions compared, ``a < b``.

    Raises
    ------
    TaskPairError
        Unknown design; fewer than two conditions; ``control_vs_treatment`` without exactly one
        no-XAI condition and at least one with-XAI one.
    """
    if design not in DESIGNS:
        raise TaskPairError(f"unknown design {design!r}; valid: {list(DESIGNS)}")
    if len(is_xai) < 2:
        raise TaskPairError(f"a study needs at least 2 conditions, got {len(is_xai)}")
    if design == "all_pairs":
        return list(itertools.combinations(range(len(is_xai)), 2))
    controls = [i for i, xai in enumerate(is_xai) if not xai]
    if len(controls) != 1 or len(controls) == len(is_xai):
        raise TaskPairError(
            "design 'control_vs_treatment' needs exactly one no-XAI condition and at least one "
            f"with-XAI condition, got {len(controls)} no-XAI of {len(is_xai)}; "
            "use design 'all_pairs' otherwise"
        )
    control = controls[0]
    return [(min(control, t), max(control, t)) for t in range(len(is_xai)) if t != control]


def _pick(
    count: int,
    uses: list[int],
    total: list[int],
    classes: Sequence[Hashable],
    load: Counter,
    rng: random.Random,
) -> list[int]:
    """``count`` query indices: least used in this condition first, then of the class least
    present in this comparison so far (``load``, updated), then least used overall."""
    order = list(range(len(uses)))
    rng.shuffle(order)
    rank = {q: r for r, q in enumerate(order)}
    picked = []
    for _ in range(count):
        q = min(order, key=lambda q: (uses[q], load[classes[q]], total[q], rank[q]))
        uses[q] += 1
        total[q] += 1
        load[classes[q]] += 1
        picked.append(q)
    return picked


def _match(
    side_a: list[int], side_b: list[int], classes: Sequence[Hashable], rng: random.Random
) -> list[tuple[int, int]]:
    """Pair ``side_a[i]`` with a permutation of ``side_b`` so that no pair shares a class."""
    n = len(side_a)
    counts = Counter(classes[q] for q in side_a) + Counter(classes[q] for q in side_b)
    worst, worst_count = max(counts.items(), key=lambda kv: kv[1])
    if worst_count > n:
        raise TaskPairError(
            f"class {worst!r} fills {worst_count} of the {2 * n} slots of a comparison; "
            f"at most {n} can be paired with other classes"
        )
    a = list(side_a)
    b = list(side_b)
    rng.shuffle(a)
    rng.shuffle(b)
    # Each swap fixes position i and breaks nothing: position j had neither class k on either
    # side, and there always is such a j while Hall's condition above holds.
    for i in range(n):
        k = classes[a[i]]
        if classes[b[i]] != k:
            continue
        candidates = [j for j in range(n) if classes[a[j]] != k and classes[b[j]] != k]
        j = rng.choice(candidates)
        b[i], b[j] = b[j], b[i]
    return list(zip(a, b, strict=True))


def task_pair_plan(
    *,
    query_classes: Sequence[Hashable],
    n_conditions: int,
    comparisons: Sequence[tuple[int, int]],
    count: int,
    seed: int,
) -> list[tuple[int, int, int, int]]:
    """Plan the task pairs of a study.

    Parameters
    ----------
    query_classes : sequence of hashable, length Q >= 2
        The target class of each query (class names, ids: any labels).
    n_conditions : int
    comparisons : sequence of (int, int)
        Condition indices compared, as :func:`task_pair_comparisons` gives.
    count : int >= 1
        Pairs per comparison.
    seed : int

    Returns
    -------
    list of (query_a, condition_a, query_b, condition_b)
        ``len(comparisons) * count`` pairs in their final (shuffled) order, indices into
        ``query_classes`` and the conditions; ``classes[query_a] != classes[query_b]`` always.
        The same arguments give the same list.

    Raises
    ------
    TaskPairError
        Fewer than 2 queries or classes, ``count < 1``, or a class too frequent to pair (with
        one comparison, only when no arrangement with evenly used queries exists; with several,
        also when 20 seeded attempts all failed).
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise TaskPairError(f"count must be an integer >= 1, got {count!r}")
    if len(query_classes) < 2 or len(set(query_classes)) < 2:
        raise TaskPairError("task pairs need queries of at least 2 different classes")
    error: TaskPairError | None = None
    # The choice of each condition's queries is greedy; with several comparisons it can corner
    # itself where another choice would pair, so a few reseeded attempts are made (the first
    # uses the seed itself, the others derive from it, so the result stays deterministic).
    for attempt in range(_ATTEMPTS):
        rng = random.Random(seed if attempt == 0 else f"{seed}:{attempt}")
        try:
            return _plan_once(query_classes, n_conditions, comparisons, count, rng)
        except TaskPairError as exc:
            error = error or exc
    assert error is not None
    raise error


_ATTEMPTS = 20


def _plan_once(
    query_classes: Sequence[Hashable],
    n_conditions: int,
    comparisons: Sequence[tuple[int, int]],
    count: int,
    rng: random.Random,
) -> list[tuple[int, int, int, int]]:
    n_queries = len(query_classes)
    uses = [[0] * n_queries for _ in range(n_conditions)]
    total = [0] * n_queries
    pairs: list[tuple[int, int, int, int]] = []
    for ca, cb in comparisons:
        load: Counter = Counter()
        side_a = _pick(count, uses[ca], total, query_classes, load, rng)
        side_b = _pick(count, uses[cb], total, query_classes, load, rng)
        pairs.extend((qa, ca, qb, cb) for qa, qb in _match(side_a, side_b, query_classes, rng))
    rng.shuffle(pairs)
    return pairs


# ---------------------------------------------------------------------------------------------
# The service.
# ---------------------------------------------------------------------------------------------


def _study_design(study: Study) -> tuple[str, int | None]:
    block = (study.spec or {}).get("task_pairs") or {}
    return block.get("design", "control_vs_treatment"), block.get("count")


def task_pair_generate(
    *, study: Study, seed: int | None = None, count: int | None = None, design: str | None = None
) -> TaskPairReport:
    """Generate (or regenerate) the study's task pairs.

    Parameters
    ----------
    study : Study
        Its conditions (in id order) and queries must exist.
    seed : int, optional
        Defaults to ``study.seed``.
    count : int, optional
        Pairs per comparison; defaults to the spec's ``task_pairs.count``, else the number of
        queries (each query once in each condition).
    design : {"control_vs_treatment", "all_pairs"}, optional
        Defaults to the spec's ``task_pairs.design``, else ``control_vs_treatment``.

    Returns
    -------
    TaskPairReport
        ``changed`` is False when the study already held exactly these pairs: generating twice
        with the same arguments writes nothing the second time.

    Raises
    ------
    TaskPairError
        The study has assignments (its pairs are in use and stay as they are), or the pairs
        cannot be made (see :func:`task_pair_plan`). Nothing is written then.
    """
    spec_design, spec_count = _study_design(study)
    design = design or spec_design
    seed = study.seed if seed is None else seed
    conditions = list(Condition.objects.filter(study=study).order_by("id"))
    queries = list(QueryImage.objects.filter(study=study).select_related("category").order_by("id"))
    count = count or spec_count or len(queries)
    comparisons = task_pair_comparisons(is_xai=[c.is_xai for c in conditions], design=design)
    plan = task_pair_plan(
        query_classes=[q.category.name for q in queries],
        n_conditions=len(conditions),
        comparisons=comparisons,
        count=count,
        seed=seed,
    )
    wanted = [
        (number, queries[qa].pk, conditions[ca].pk, queries[qb].pk, conditions[cb].pk)
        for number, (qa, ca, qb, cb) in enumerate(plan, start=1)
    ]
    with transaction.atomic():
        existing = sorted(
            TaskPair.objects.filter(study=study).values_list(
                "number", "query_a_id", "condition_a_id", "query_b_id", "condition_b_id"
            )
        )
        changed = existing != wanted
        if changed:
            if Assignment.objects.filter(study=study).exists():
                raise TaskPairError(
                    f"study {study.slug!r} has assignments; its task pairs cannot change"
                )
            TaskPair.objects.filter(study=study).delete()
            TaskPair.objects.bulk_create(
                TaskPair(
                    study=study,
                    number=number,
                    query_a_id=qa,
                    condition_a_id=ca,
                    query_b_id=qb,
                    condition_b_id=cb,
                )
                for number, qa, ca, qb, cb in wanted
            )

    names = [c.name for c in conditions]
    uses = {q.pk: dict.fromkeys(names, 0) for q in queries}
    for qa, ca, qb, cb in plan:
        uses[queries[qa].pk][names[ca]] += 1
        uses[queries[qb].pk][names[cb]] += 1
    spread = {
        name: (min(u[name] for u in uses.values()), max(u[name] for u in uses.values()))
        for name in names
    }
    per_comparison = Counter(f"{names[ca]}/{names[cb]}" for _, ca, _, cb in plan)
    return TaskPairReport(
        study_id=study.pk,
        seed=seed,
        n_pairs=len(wanted),
        changed=changed,
        uses=uses,
        spread=spread,
        comparisons=dict(per_comparison),
    )
