"""Steps of the rehearsal that run inside the platform (``manage.py rehearse_stage``), under
the same production settings as the stack.

``setup``: the synthetic archive, its features, seed 001's study on it, live.
``publish``: the study's HITs on the local MTurk endpoint and the crowd's plan (HIT ids and
the ground truth the simulated workers judge by).
``finish``: the outbox drained, sync, approve, bonus (sent twice: the second pays nothing),
the analysis, and every invariant of the rehearsal checked (:func:`rehearsal_check`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import yaml
from django.conf import settings
from django.db.models import Count

ARCHIVE = "rehearsal-synthetic"
BACKBONE = {"name": "synthnet", "layer": "avgpool", "weights": "fixture", "image_size": 128}
SPEC = Path(settings.BASE_DIR) / "fixtures" / "studies" / "seed001.yaml"
BONUS = "0.10"
BONUS_REASON = "Thank you for completing both searches."


def rehearsal_setup(*, images: int, seed: int, folder: Path, saliency: dict, log=print) -> dict:
    """Archive (``images`` synthetic images), features, and seed 001's study, live.

    ``saliency`` overrides the with-XAI condition's SBSM parameters (block and stride in
    pixels): the paper's 20/4 at 224 px is GPU work; a rehearsal on CPUs uses coarser masks.
    Returns ``{"study": slug, "pairs": n, "cells": n}``.
    """
    from retrieval.services import archive_import_coco
    from retrieval.services.features import feature_set_create, feature_set_extract
    from retrieval.synthetic import generate_archive
    from studyplatform.studies.services.specs import study_spec_load
    from studyplatform.studies.services.studies import study_create_from_spec, study_status_set

    archive_dir = folder / f"archive-{images}-{seed}"
    if not (archive_dir / "instances.json").exists():
        log(f"generating {images} synthetic images")
        generate_archive(archive_dir, n_images=images, seed=seed)
    archive = archive_import_coco(
        archive_name=ARCHIVE,
        instances_path=archive_dir / "instances.json",
        image_dir=archive_dir / "images",
        log=lambda message: None,
    ).archive
    feature_set, _ = feature_set_create(archive=archive, backbone_config=BACKBONE, enqueue=False)
    feature_set_extract(feature_set=feature_set)
    spec = yaml.safe_load(SPEC.read_text())
    spec["archive"] = ARCHIVE
    spec["feature_set"] = {"backbone": BACKBONE}
    for condition in spec["conditions"]:
        if condition.get("method") == "sbsm":
            condition["config"] = {**condition["config"], **saliency}
    study = study_create_from_spec(spec=study_spec_load(yaml.safe_dump(spec)))
    study_status_set(study=study, status="ready")
    study_status_set(study=study, status="live")
    pairs = study.task_pairs.count()
    return {"study": study.slug, "pairs": pairs, "cells": 2 * pairs}


def rehearsal_publish(*, study_slug: str, mturk_url: str) -> dict:
    """Publish the study to the local endpoint; the crowd's plan fields (HIT ids, truth)."""
    from mturk.client import mturk_client
    from mturk.services import hit_publish
    from retrieval.models import Annotation
    from studyplatform.studies.models import QueryImage, Study

    study = Study.objects.get(slug=study_slug)
    client = mturk_client(environment="local", endpoint_url=mturk_url)
    result = hit_publish(study=study, client=client, confirm=True)
    query_class = dict(
        QueryImage.objects.filter(study=study).values_list("image_id", "category_id")
    )
    positives: dict[int, list[int]] = {}
    rows = Annotation.objects.filter(
        archive=study.archive_id, category_id__in=set(query_class.values())
    )
    for image_id, category_id in rows.values_list("image_id", "category_id").distinct():
        positives.setdefault(category_id, []).append(image_id)
    return {
        "hit_ids": [hit.hit_id for hit in result.hits],
        "assignments_published": sum(hit.max_assignments for hit in result.hits),
        "query_class": query_class,
        "positives": positives,
    }


def _outbox_drained(timeout: float) -> dict:
    """Wait (bounded) until every outbox entry is done; the counts at the end."""
    from studyplatform.outbox.selectors import outbox_counts

    deadline = time.monotonic() + timeout
    counts = outbox_counts()
    while counts["pending"] and time.monotonic() < deadline:
        time.sleep(2)
        counts = outbox_counts()
    return counts


def rehearsal_finish(*, study_slug: str, mturk_url: str, mturk_state: Path, drive: dict,
                     outbox_timeout: float = 180.0) -> dict:  # fmt: skip
    """Drain the outbox, sync, approve, bonus twice, analyse; then :func:`rehearsal_check`."""
    from analysis.services import analysis_run
    from mturk.client import MTurkError, mturk_client
    from mturk.services import assignment_approve, assignments_sync, bonus_send
    from studyplatform.studies.models import Assignment, Study

    study = Study.objects.get(slug=study_slug)
    client = mturk_client(environment="local", endpoint_url=mturk_url)
    out: dict = {"outbox": _outbox_drained(outbox_timeout)}
    sync = assignments_sync(study=study, client=client)
    out["sync"] = sync.lines()
    for _ in range(5):  # grants MTurk failed are sent again by the next sync, as beat would
        if not sync.grant_failed:
            break
        time.sleep(2)
        sync = assignments_sync(study=study, client=client)
        out["sync"] += sync.lines()[-2:]
    approved, errors = 0, []
    for assignment in study.assignments.filter(status=Assignment.Status.SUBMITTED):
        try:
            assignment_approve(mturk_assignment_id=assignment.mturk_assignment_id, client=client)
            approved += 1
        except MTurkError as exc:
            errors.append(f"approve {assignment.mturk_assignment_id}: {exc}")
    bonuses = 0
    for _ in range(2):  # the second round must pay nothing more
        for assignment in study.assignments.filter(
            status=Assignment.Status.APPROVED
        ).select_related("participant"):
            try:
                bonus_send(worker_id=assignment.participant.external_id,
                           mturk_assignment_id=assignment.mturk_assignment_id, amount=BONUS,
                           reason=BONUS_REASON, client=client)  # fmt: skip
                bonuses += 1
            except MTurkError as exc:
                errors.append(f"bonus {assignment.mturk_assignment_id}: {exc}")
    out.update(approved_now=approved, bonus_calls=bonuses, errors=errors)
    try:
        analysis = analysis_run(study=study, n_permutations=1000)
        out["analysis"] = {"ok": True, "detail": _analysis_summary(analysis)}
    except Exception as exc:  # reported as a failed invariant, not a crash of the report
        out["analysis"] = {"ok": False, "detail": repr(exc)[:500]}
    out["checks"] = rehearsal_check(study=study, mturk_state=mturk_state, drive=drive)
    out["checks"]["analysis runs"] = {
        "ok": out["analysis"]["ok"],
        "detail": out["analysis"]["detail"],
    }
    out["checks"]["outbox drained"] = {
        "ok": out["outbox"]["pending"] == 0,
        "detail": f"{out['outbox']['done']} done, {out['outbox']['pending']} pending, "
        f"{out['outbox']['republished']} published more than once",
    }
    return out


def _analysis_summary(analysis) -> str:
    for name in ("tasks", "task_table", "frame"):
        value = getattr(analysis, name, None)
        if value is not None and hasattr(value, "__len__"):
            return f"{len(value)} task rows"
    return type(analysis).__name__


def _endpoint_rows(mturk_state: Path) -> tuple[list[dict], list[dict], str, set[tuple[str, str]]]:
    """The endpoint's assignments, bonuses, balance and the workers holding a granted
    qualifications as (type id, worker id), read from its state file."""
    db = sqlite3.connect(f"file:{mturk_state}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        assignments = [
            dict(r) for r in db.execute("SELECT id, worker_id, hit_id, status FROM assignments")
        ]
        bonuses = [
            dict(r) for r in db.execute("SELECT worker_id, assignment_id, amount FROM bonuses")
        ]
        balance = db.execute("SELECT value FROM meta WHERE key='balance'").fetchone()[0]
        qualified = {
            (r[0], r[1])
            for r in db.execute(
                "SELECT type_id, worker_id FROM qualifications WHERE status='Granted'"
            )
        }
    finally:
        db.close()
    return assignments, bonuses, balance, qualified


def rehearsal_check(*, study, mturk_state: Path, drive: dict) -> dict:
    """Every invariant of the rehearsal: ``{name: {"ok": bool, "detail": str}}``.

    * every assignment MTurk saw submitted is complete here and approved (paid) once;
    * bonus at most once per assignment on MTurk;
    * every event id the platform acknowledged to a page is stored exactly once;
    * no (task pair, order) cell holds more workers than the study's repetitions;
    * no worker holds two assignments, here or on MTurk;
    * every worker MTurk listed holds the "participated" qualification (repeat workers blocked).
    """
    from mturk.models import QualificationType
    from mturk.selectors import money_spent
    from studyplatform.studies.models import Assignment, Event
    from studyplatform.studies.services.assignments import HOLDING

    checks: dict = {}
    on_mturk, bonuses, balance, qualified = _endpoint_rows(mturk_state)
    seen = [a for a in on_mturk if a["status"] in ("Submitted", "Approved", "Rejected")]
    here = {a.mturk_assignment_id: a for a in Assignment.objects.filter(study=study)}
    incomplete = [
        a["id"] for a in seen if a["id"] not in here or here[a["id"]].status != "approved"
    ]
    not_approved = [a["id"] for a in seen if a["status"] != "Approved"]
    checks["submitted on MTurk = complete here and paid once"] = {
        "ok": bool(seen) and not incomplete and not not_approved,
        "detail": f"{len(seen)} submitted on MTurk, {len(incomplete)} not complete+approved here, "
        f"{len(not_approved)} not approved on MTurk",
    }
    spent = money_spent(study=study, environment="local")
    initial = Decimal(drive.get("initial_balance", "0"))
    charged = initial - Decimal(balance) if initial else None
    checks["money charged = rewards + bonuses + fees, once"] = {
        "ok": charged is not None and charged == spent["total"],
        "detail": f"endpoint charged {charged}, platform's ledger {spent['total']} "
        f"({spent['approved_assignments']} rewards, bonuses {spent['bonuses']})",
    }
    per_assignment = Counter(b["assignment_id"] for b in bonuses)
    twice = [k for k, n in per_assignment.items() if n > 1]
    checks["bonus at most once"] = {
        "ok": not twice,
        "detail": f"{len(bonuses)} bonuses on MTurk, {len(twice)} assignments paid twice",
    }
    acked = [(r.get("platform_assignment"), i) for r in drive["records"] for i in r["acknowledged"]]
    stored = Counter(
        Event.objects.filter(
            assignment__study=study, client_event_id__in={i for _, i in acked}
        ).values_list("assignment_id", "client_event_id")
    )
    missing = [k for k in acked if stored.get(k, 0) == 0]
    duplicated = [k for k in acked if stored.get(k, 0) > 1]
    checks["acknowledged events stored exactly once"] = {
        "ok": not missing and not duplicated,
        "detail": f"{len(acked)} acknowledged, {len(missing)} missing, {len(duplicated)} stored twice",
    }
    over = (
        Assignment.objects.filter(study=study, status__in=HOLDING)
        .values("task_pair_id", "order")
        .annotate(n=Count("id"))
        .filter(n__gt=study.repetitions)
    )
    checks["no cell over capacity"] = {
        "ok": not over.exists(),
        "detail": f"{over.count()} cells over {study.repetitions} workers",
    }
    two_here = (
        Assignment.objects.filter(study=study)
        .exclude(status=Assignment.Status.ABANDONED)
        .values("participant_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    live_on_mturk = Counter(a["worker_id"] for a in on_mturk if a["status"] != "Returned")
    two_there = sum(1 for n in live_on_mturk.values() if n > 1)
    checks["no worker with two HITs"] = {
        "ok": two_here == 0 and two_there == 0,
        "detail": f"{two_here} workers with two assignments here, {two_there} on MTurk",
    }
    listed = {a["worker_id"] for a in seen}
    participated = set(
        QualificationType.objects.filter(environment="local", study=study).values_list(
            "qualification_type_id", flat=True
        )
    )
    unqualified = sorted(w for w in listed if not any((t, w) in qualified for t in participated))
    checks["every worker MTurk listed holds the participated qualification"] = {
        "ok": bool(listed) and not unqualified,
        "detail": f"{len(listed)} workers listed, {len(unqualified)} without it {unqualified[:5]}",
    }
    return checks


def json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, default=json_default))
