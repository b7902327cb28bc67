"""Assignments: which (task pair, order) cell a participant gets, and when a cell is freed.

Seed 001 section 4: every worker does one task pair, its two conditions in counterbalanced
order, never the same class in both conditions, and each pair is done by several distinct
workers. The rules, in the order :func:`assignment_start` applies them:

1. A participant who holds an active assignment of the study gets it back (a reload, a
   returning browser); one who submitted (or was approved or rejected) is refused: one HIT per
   participant per study.
2. A participant whose last assignment was abandoned (idle past the study's timeout) gets it
   back, with their work so far, when its cell still has room.
3. Otherwise the task pair with the fewest *holding* assignments (active, submitted,
   approved: the "completed + active" of psiTurk's counterbalancing) among the pairs not yet
   full and showing none of the classes this participant already saw in the study (in an
   abandoned or returned assignment), ties to the lower pair number. A pair is full with
   ``study.repetitions`` distinct workers in both orders together (seed 001: "we were able to
   loop over each task pair at least three times"), or one more on the pairs that spec
   ``hits`` needs to reach its total (:func:`pair_capacities`).
4. The order: under spec ``order: balanced`` (the default) the pair's emptier order, ties to
   "ab" on even pair numbers and "ba" on odd ones; under ``order: random`` (seed 001: "the
   order of the with-XAI and without-XAI conditions was random") a fair coin drawn from a seed
   recorded on the assignment (``Assignment.order_seed``).

Under ``balanced``, with arrivals alone a pair's two orders differ by at most one; a freed
cell (abandoned, returned, rejected) can leave them two apart until the next arrival on the
pair fills the emptier one.

Concurrency: the whole choice runs in one transaction that first locks the study row
(``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite a write to the study row, which takes the
database's single write lock at once instead of upgrading a read lock later), so concurrent
starts of one study are serialised and each sees the cells the previous one filled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from ..models import Assignment, Participant, SearchTask, Study, TaskPair
from ..signals import assignment_started

__all__ = [
    "AssignmentRefused",
    "assignment_cell_choose",
    "assignment_release_idle",
    "assignment_return",
    "assignment_start",
    "assignment_touch",
    "order_draw",
    "pair_capacities",
    "study_pair_capacities",
]

HOLDING = tuple(str(status) for status in Assignment.HOLDING_STATUSES)
DONE = (Assignment.Status.SUBMITTED, Assignment.Status.APPROVED, Assignment.Status.REJECTED)


class AssignmentRefused(Exception):
    """No assignment for this participant; ``reason`` is one of the constants below."""

    NOT_LIVE = "not_live"
    ALREADY_DONE = "already_done"
    NO_CELL = "no_cell"
    EXPIRED = "expired"
    BAD_REQUEST = "bad_request"
    BOUND_ELSEWHERE = "bound_elsewhere"
    BUSY = "busy"

    def __init__(self, reason: str, message: str = "") -> None:
        self.reason = reason
        super().__init__(message or reason)


# ---------------------------------------------------------------------------------------------
# The rule on plain values.
# ---------------------------------------------------------------------------------------------


def pair_capacities(
    *, pairs: Iterable[int], repetitions: int, hits: int | None = None, seed: int = 0
) -> dict[int, int]:
    """How many distinct workers each pair takes: ``repetitions`` each, and with ``hits`` the
    ``hits - repetitions * n_pairs`` HITs left over one more each on as many pairs, drawn with
    ``seed`` (seed 001: 148 pairs, at least 3 workers each, 476 HITs: 32 pairs get a 4th).

    Raises ValueError when ``hits`` is fewer than ``repetitions`` per pair, or more than twice
    that (a pair would need a second extra worker: raise ``repetitions`` instead).
    """
    numbers = sorted(pairs)
    capacity = dict.fromkeys(numbers, repetitions)
    if hits is None:
        return capacity
    extra = hits - repetitions * len(numbers)
    if extra < 0:
        raise ValueError(
            f"hits ({hits}) is fewer than {repetitions} repetitions x {len(numbers)} task pairs "
            f"= {repetitions * len(numbers)}"
        )
    if extra > len(numbers):
        raise ValueError(
            f"hits ({hits}) exceeds {repetitions + 1} workers on each of the {len(numbers)} "
            "task pairs; raise repetitions"
        )
    for number in random.Random(seed).sample(numbers, extra):
        capacity[number] += 1
    return capacity


def order_draw(order_seed: int) -> str:
    """The order of a HIT under ``order: random`` (seed 001: "the order of the with-XAI and
    without-XAI conditions was random"): "ab" or "ba", a fair coin seeded by ``order_seed``."""
    return random.Random(order_seed).choice(("ab", "ba"))


def assignment_cell_choose(
    *,
    pairs: Iterable[int],
    holders: Mapping[tuple[int, str], int],
    capacity: int | Mapping[int, int],
    excluded: Iterable[int] = (),
    order_seed: int | None = None,
) -> tuple[int, str] | None:
    """The (pair number, order) a new participant gets, or None when no pair is left.

    The pair: among those not full (fewer holders in both orders than their ``capacity``)
    and not ``excluded``, the one with the fewest holders, then the lower number; so every
    pair reaches ``repetitions`` before any takes an extra worker. The order: with
    ``order_seed`` None (``order: balanced``) the pair's emptier order, ties going to "ab" on
    even numbers and "ba" on odd ones, so a pair's two orders differ by at most one; with an
    ``order_seed`` (``order: random``) :func:`order_draw` of it.

    Parameters
    ----------
    pairs : iterable of int
        The study's pair numbers.
    holders : mapping of (pair number, "ab" | "ba") to int
        Holding assignments per cell; missing cells hold none.
    capacity : int or mapping of pair number to int
        Distinct workers a pair takes, in both orders together (:func:`pair_capacities`).
    excluded : iterable of int
        Pair numbers this participant must not get (a class already seen).
    order_seed : int, optional
    """
    excluded = set(excluded)
    best_key = None
    for number in pairs:
        if number in excluded:
            continue
        total = holders.get((number, "ab"), 0) + holders.get((number, "ba"), 0)
        limit = capacity if isinstance(capacity, int) else capacity.get(number, 0)
        if total >= limit:
            continue
        key = (total, number)
        if best_key is None or key < best_key:
            best_key = key
    if best_key is None:
        return None
    number = best_key[1]
    if order_seed is not None:
        return number, order_draw(order_seed)
    ab, ba = holders.get((number, "ab"), 0), holders.get((number, "ba"), 0)
    if ab != ba:
        return number, "ab" if ab < ba else "ba"
    return number, "ab" if number % 2 == 0 else "ba"


# ---------------------------------------------------------------------------------------------
# Services.
# ---------------------------------------------------------------------------------------------


def _lock_study(study: Study) -> Study:
    """Serialise assignment changes of ``study`` until the transaction ends."""
    if connection.vendor == "postgresql":
        return Study.objects.select_for_update().get(pk=study.pk)
    # SQLite: write first, so the transaction holds the write lock before it reads anything.
    Study.objects.filter(pk=study.pk).update(status=F("status"))
    return Study.objects.get(pk=study.pk)


def _no_progress(study: Study):
    """The study's active assignments none of whose search tasks has begun."""
    return Assignment.objects.filter(study=study, status=Assignment.Status.ACTIVE).exclude(
        tasks__started_at__isnull=False
    )


def _release_idle(study: Study, now: dt.datetime) -> int:
    """Abandon the active assignments idle past the study's timeout, and those that began no
    search task within ``settings.HIT_NO_PROGRESS_MINUTES`` of starting, however often their
    page reports in (a held cell is otherwise kept by one event every few minutes)."""
    cutoff = now - dt.timedelta(minutes=study.assignment_timeout_minutes)
    idle = Assignment.objects.filter(
        study=study, status=Assignment.Status.ACTIVE, last_seen_at__lt=cutoff
    ).update(status=Assignment.Status.ABANDONED, finished_at=now)
    stalled = now - dt.timedelta(minutes=settings.HIT_NO_PROGRESS_MINUTES)
    ids = list(_no_progress(study).filter(started_at__lt=stalled).values_list("pk", flat=True))
    Assignment.objects.filter(pk__in=ids).update(
        status=Assignment.Status.ABANDONED, finished_at=now
    )
    return idle + len(ids)


def _check_idle_cap(study: Study, cells: dict) -> None:
    """Refuse a new assignment while ``settings.HIT_NO_PROGRESS_MAX_SHARE`` of the study's
    places are held by participants who have not begun a search task."""
    places = sum(study_pair_capacities(study=study).values())
    cap = max(1, int(places * settings.HIT_NO_PROGRESS_MAX_SHARE))
    if _no_progress(study).count() >= cap:
        raise AssignmentRefused(
            AssignmentRefused.BUSY,
            f"study {study.slug!r}: {cap} places are held by participants who have not begun; "
            "new ones wait until they begin or are released",
        )


def _bound_elsewhere(assignment: Assignment, mturk: dict) -> bool:
    """True when ``assignment`` is bound to another MTurk assignment or HIT than ``mturk`` names.

    Worker ids are not secret: an assignment is never rebound from a URL, or anyone who knows a
    worker's id could take over their HIT in progress (and its payment) with an assignment id
    of their own.
    """
    return any(
        value and getattr(assignment, field) and getattr(assignment, field) != value
        for field, value in mturk.items()
        if field in ("mturk_assignment_id", "hit_id")
    )


def _bind_mturk(assignment: Assignment, mturk: dict) -> list[str]:
    """Copy non-empty MTurk ids onto the assignment's empty ones; the fields changed."""
    changed = []
    for field, value in mturk.items():
        if value and not getattr(assignment, field):
            setattr(assignment, field, value)
            changed.append(field)
    return changed


def _resume(assignment: Assignment, now: dt.datetime, mturk: dict) -> Assignment:
    fields = ["last_seen_at", *_bind_mturk(assignment, mturk)]
    if assignment.status != Assignment.Status.ACTIVE:
        assignment.status = Assignment.Status.ACTIVE
        assignment.finished_at = None
        fields += ["status", "finished_at"]
    assignment.last_seen_at = now
    assignment.save(update_fields=fields)
    return assignment


def _check_text(name: str, value: str, *, required: bool = False, max_length: int = 64) -> str:
    if not isinstance(value, str):
        raise AssignmentRefused(AssignmentRefused.BAD_REQUEST, f"{name} must be a string")
    value = value.strip()
    if required and not value:
        raise AssignmentRefused(AssignmentRefused.BAD_REQUEST, f"{name} is empty")
    if len(value) > max_length:
        raise AssignmentRefused(
            AssignmentRefused.BAD_REQUEST, f"{name} is longer than {max_length} characters"
        )
    return value


def assignment_start(
    *,
    study: Study,
    source: str,
    external_id: str,
    mturk_assignment_id: str = "",
    hit_id: str = "",
    turk_submit_to: str = "",
) -> Assignment:
    """Start (or resume) ``external_id``'s assignment of ``study``; see the module docstring.

    Parameters
    ----------
    study : Study
    source : {"mturk", "lab"}
    external_id : str
        The MTurk WorkerId or the lab participant's code (1-64 characters).
    mturk_assignment_id, hit_id, turk_submit_to : str
        MTurk's ExternalQuestion parameters. An assignment bound to an MTurk assignment id (or
        HIT id) keeps it: an active one is refused under another id (``bound_elsewhere``), an
        abandoned one is not resumed under another id (the worker returned it on MTurk and
        accepted again: they start afresh, on classes they have not seen).

    Returns
    -------
    Assignment
        Active, with its two ``SearchTask`` rows: position 1 is ``query_a``/``condition_a``
        for order "ab", ``query_b``/``condition_b`` for "ba". A new assignment (not one
        handed back) is announced by ``signals.assignment_started`` inside the transaction.
        Nothing is sent to MTurk: the worker id in a URL is not verified, so the
        "participated" qualification goes to the worker MTurk reports when the assignments
        are synced (``mturk.services``).

    Raises
    ------
    AssignmentRefused
        ``not_live`` (and no active assignment to resume), ``already_done``, ``no_cell``,
        ``expired`` (the MTurk assignment id is bound to an earlier assignment that was returned
        or whose cell was taken after it was abandoned), ``bound_elsewhere`` (the participant's
        active assignment is bound to another MTurk assignment or HIT), ``busy`` (too many
        places held by participants who have not begun, see ``_check_idle_cap``), or
        ``bad_request`` (unknown source,
        empty or overlong ids, an MTurk assignment id of another participant or study).
        Nothing is written then.
    """
    if source not in Participant.Source.values:
        raise AssignmentRefused(
            AssignmentRefused.BAD_REQUEST,
            f"unknown source {source!r}; valid: {Participant.Source.values}",
        )
    external_id = _check_text("external_id", external_id, required=True)
    mturk = {
        "mturk_assignment_id": _check_text("mturk_assignment_id", mturk_assignment_id),
        "hit_id": _check_text("hit_id", hit_id),
        "turk_submit_to": _check_text("turk_submit_to", turk_submit_to, max_length=200),
    }
    now = timezone.now()
    with transaction.atomic():
        study = _lock_study(study)
        _release_idle(study, now)
        participant, created = Participant.objects.get_or_create(
            source=source, external_id=external_id
        )
        own = (
            []
            if created
            else list(
                Assignment.objects.filter(study=study, participant=participant)
                .select_related("task_pair__query_a", "task_pair__query_b")
                .order_by("-id")
            )
        )
        holder = _mturk_id_holder(study, participant, mturk["mturk_assignment_id"])
        current = next((a for a in own if a.status in HOLDING), None)
        if current is not None and current.status == Assignment.Status.ACTIVE:
            _check_holder(holder, current, mturk)
            if _bound_elsewhere(current, mturk):
                raise AssignmentRefused(
                    AssignmentRefused.BOUND_ELSEWHERE,
                    f"participant {external_id} holds an active assignment of study "
                    f"{study.slug!r} under another MTurk assignment or HIT",
                )
            return _resume(current, now, mturk)
        if current is not None or any(a.status == Assignment.Status.REJECTED for a in own):
            raise AssignmentRefused(
                AssignmentRefused.ALREADY_DONE,
                f"participant {external_id} has already done study {study.slug!r}",
            )
        if study.status != Study.Status.LIVE:
            raise AssignmentRefused(
                AssignmentRefused.NOT_LIVE, f"study {study.slug!r} is {study.status}, not live"
            )
        cells = _cells(study)
        if own and own[0].status == Assignment.Status.ABANDONED:
            last = own[0]
            held = sum(cells[last.task_pair_id].holders.values())
            if held < study_pair_capacities(study=study)[
                last.task_pair.number
            ] and not _bound_elsewhere(last, mturk):
                _check_holder(holder, last, mturk)
                return _resume(last, now, mturk)
        _check_holder(holder, None, mturk)
        seen = set()
        for a in own:
            seen.update((a.task_pair.query_a.category_id, a.task_pair.query_b.category_id))
        assignment = _assignment_new(study, participant, cells, seen, mturk)
        assignment_started.send(sender=Assignment, assignment=assignment)
    return assignment


@dataclass(frozen=True)
class _Cell:
    pair_id: int
    number: int
    classes: tuple[int, int]
    first: tuple[int, int]  # (query id, condition id) of a
    second: tuple[int, int]  # of b
    holders: dict[str, int]


def _cells(study: Study) -> dict[int, _Cell]:
    """The study's pairs with their classes and holders per order, in one query."""
    holding = Q(assignments__status__in=HOLDING)
    rows = (
        TaskPair.objects.filter(study=study)
        .annotate(
            n_ab=Count("assignments", filter=holding & Q(assignments__order="ab")),
            n_ba=Count("assignments", filter=holding & Q(assignments__order="ba")),
        )
        .values_list(
            "id",
            "number",
            "query_a_id",
            "query_a__category_id",
            "condition_a_id",
            "query_b_id",
            "query_b__category_id",
            "condition_b_id",
            "n_ab",
            "n_ba",
        )
    )
    return {
        pk: _Cell(pk, number, (class_a, class_b), (qa, ca), (qb, cb), {"ab": n_ab, "ba": n_ba})
        for pk, number, qa, class_a, ca, qb, class_b, cb, n_ab, n_ba in rows
    }


def _mturk_id_holder(
    study: Study, participant: Participant, mturk_assignment_id: str
) -> Assignment | None:
    """The assignment already bound to this MTurk assignment id, if it is this participant's
    in this study; refuses an id bound to someone else."""
    if not mturk_assignment_id:
        return None
    holder = Assignment.objects.filter(mturk_assignment_id=mturk_assignment_id).first()
    if holder is not None and (
        holder.study_id != study.pk or holder.participant_id != participant.pk
    ):
        raise AssignmentRefused(
            AssignmentRefused.BAD_REQUEST,
            f"MTurk assignment {mturk_assignment_id} belongs to another participant or study",
        )
    return holder


def _check_holder(holder: Assignment | None, target: Assignment | None, mturk: dict) -> None:
    """Refuse when the MTurk id is bound to another (returned or given-up) assignment than the
    one the participant is about to get."""
    if holder is not None and (target is None or holder.pk != target.pk):
        raise AssignmentRefused(
            AssignmentRefused.EXPIRED,
            f"MTurk assignment {mturk['mturk_assignment_id']} was {holder.status}; "
            "return the HIT and accept it again",
        )


def study_pair_capacities(*, study: Study) -> dict[int, int]:
    """Distinct workers each of ``study``'s pairs takes, by pair number (spec
    ``repetitions`` per pair, and ``hits`` in all when given; :func:`pair_capacities`)."""
    numbers = TaskPair.objects.filter(study=study).values_list("number", flat=True)
    return pair_capacities(
        pairs=numbers,
        repetitions=study.repetitions,
        hits=(study.spec or {}).get("hits"),
        seed=study.seed,
    )


def _order_seed(study: Study) -> int | None:
    """A fresh seed for the order of the next HIT under ``order: random``, else None: derived
    from the study's seed and how many assignments the study has had, so a study's sequence
    of draws replays from its seed, and recorded on the assignment."""
    if (study.spec or {}).get("order", "balanced") != "random":
        return None
    issued = Assignment.objects.filter(study=study).count()
    digest = hashlib.sha256(f"{study.seed}:order:{issued}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


def _assignment_new(
    study: Study, participant: Participant, cells: dict[int, _Cell], seen: set[int], mturk: dict
) -> Assignment:
    by_number = {cell.number: cell for cell in cells.values()}
    order_seed = _order_seed(study)
    chosen = assignment_cell_choose(
        pairs=sorted(by_number),
        holders={
            (cell.number, order): n for cell in cells.values() for order, n in cell.holders.items()
        },
        capacity=study_pair_capacities(study=study),
        excluded=[cell.number for cell in cells.values() if seen.intersection(cell.classes)],
        order_seed=order_seed,
    )
    if chosen is None:
        raise AssignmentRefused(
            AssignmentRefused.NO_CELL,
            f"study {study.slug!r} has no task pair left for participant {participant.external_id}",
        )
    _check_idle_cap(study, cells)
    number, order = chosen
    cell = by_number[number]
    assignment = Assignment.objects.create(
        study=study,
        participant=participant,
        task_pair_id=cell.pair_id,
        order=order,
        order_seed=order_seed,
        **mturk,
    )
    first, second = cell.first, cell.second
    if order == Assignment.Order.BA:
        first, second = second, first
    SearchTask.objects.bulk_create(
        SearchTask(assignment=assignment, position=position, query_id=query, condition_id=condition)
        for position, (query, condition) in ((1, first), (2, second))
    )
    return assignment


def assignment_release_idle(*, study: Study, now: dt.datetime | None = None) -> int:
    """Mark the study's active assignments idle for longer than its
    ``assignment_timeout_minutes`` (by ``last_seen_at``) as abandoned, freeing their cells.

    Returns the number released. :func:`assignment_start` does this itself before choosing a
    cell, so a periodic call only keeps the progress figures current.
    """
    with transaction.atomic():
        study = _lock_study(study)
        return _release_idle(study, now or timezone.now())


def assignment_return(*, mturk_assignment_id: str) -> Assignment:
    """Record that the worker returned this MTurk assignment; its cell is free again.

    Idempotent (a returned assignment stays returned); an abandoned one becomes returned.

    Raises
    ------
    Assignment.DoesNotExist
        No assignment has this MTurk id.
    ValueError
        The assignment was submitted, approved or rejected: it cannot have been returned.
    """
    with transaction.atomic():
        assignment = (
            Assignment.objects.select_for_update()
            .filter(mturk_assignment_id=mturk_assignment_id)
            .exclude(mturk_assignment_id="")
            .first()
        )
        if assignment is None:
            raise Assignment.DoesNotExist(f"no assignment with MTurk id {mturk_assignment_id!r}")
        if assignment.status in DONE:
            raise ValueError(
                f"assignment {mturk_assignment_id} is {assignment.status}; it cannot be returned"
            )
        if assignment.status != Assignment.Status.RETURNED:
            assignment.status = Assignment.Status.RETURNED
            assignment.finished_at = timezone.now()
            assignment.save(update_fields=["status", "finished_at"])
    return assignment


def assignment_touch(*, assignment: Assignment) -> bool:
    """Record activity on ``assignment`` (``last_seen_at`` = now) while it is active.

    Returns False, changing nothing, when it is no longer active (abandoned assignments come
    back through :func:`assignment_start`, which resumes them when their cell has room).
    """
    now = timezone.now()
    updated = Assignment.objects.filter(
        Q(pk=assignment.pk) & Q(status=Assignment.Status.ACTIVE)
    ).update(last_seen_at=now)
    if updated:
        assignment.last_seen_at = now
    return bool(updated)
