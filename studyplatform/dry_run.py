"""A launch rehearsed end to end on the local MTurk endpoint, with no money and no AWS.

``study_dry_run`` publishes the study to a local endpoint, lets simulated MTurk workers find and
accept its HITs there (qualifications enforced by the endpoint), do the HIT through the
platform's real worker pages (in-process HTTP, ``analysis.simulation``), submit with the form POST
a browser makes to ``{turkSubmitTo}/mturk/externalSubmit``, then syncs, approves and reports the
money that would have been spent. It joins the MTurk app and the analysis' simulated workers,
so it lives in the wiring, above both.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.test import override_settings

from analysis.simulation import study_simulate
from mturk.client import MTurkError, mturk_client
from mturk.local.server import LocalMTurkServer
from mturk.models import Hit
from mturk.selectors import money_spent
from mturk.services.assignments import assignment_approve, assignments_sync
from mturk.services.hits import hit_publish


@dataclass
class DryRunReport:
    """Workers accepted and refused on MTurk, submitted here, approved, and the money."""

    endpoint: str
    hits: int = 0
    accepted: int = 0
    refused_on_mturk: list[str] = field(default_factory=list)
    submitted: int = 0
    approved: int = 0
    sync: list[str] = field(default_factory=list)
    money: dict[str, Decimal] = field(default_factory=dict)


def _worker_id(seed: int, index: int) -> str:
    return f"A{seed:03d}DRYRUN{index:04d}"


def _refuse_a_real_study(study: Any) -> None:
    if Hit.objects.filter(study=study).exclude(environment="local").exists():
        raise MTurkError(
            f"study {study.slug} has HITs on the sandbox or MTurk: rehearse on a copy of its spec "
            "(another slug), never on the study workers are taking"
        )
    real = study.assignments.exclude(participant__external_id__regex=r"^A[0-9]{3}DRYRUN[0-9]{4}$")
    if real.exists():
        raise MTurkError(
            f"study {study.slug} has {real.count()} assignments of real participants: rehearse "
            "on a copy of its spec (another slug)"
        )


def study_dry_run(*, study: Any, workers: int, seed: int = 0, state: Path) -> DryRunReport:
    """Rehearse ``study`` (live) with ``workers`` simulated MTurk workers (US, 5,000 approved
    HITs, 99% approval, so they pass the usual filters); the endpoint's state goes to
    ``state`` (a SQLite file, reused by a second run).

    Raises :class:`~mturk.client.MTurkError`, writing nothing, for a study published on the
    sandbox or on MTurk itself, or with participants who are not simulated workers: the
    simulated workers' assignments would sit among the real ones and take their places.
    """
    _refuse_a_real_study(study)
    server = LocalMTurkServer(state=str(state)).start()
    try:
        report = DryRunReport(endpoint=server.url)
        with override_settings(
            PUBLIC_BASE_URL="http://127.0.0.1",
            HIT_EXTRA_SUBMIT_ORIGINS=[server.url],
            MTURK_LOCAL_URL=server.url,
        ):
            client = mturk_client(environment="local", endpoint_url=server.url)
            report.hits = len(hit_publish(study=study, client=client, confirm=True).hits)

            def accept(index: int) -> dict | None:
                worker_id = _worker_id(seed, index)
                server.store.worker_add(worker_id=worker_id)
                for hit in server.store.hits_for_worker(worker_id):
                    if not hit["reason"]:
                        assignment = server.store.assignment_accept(
                            worker_id=worker_id, hit_id=hit["HITId"]
                        )
                        report.accepted += 1
                        return {
                            "assignmentId": assignment["AssignmentId"],
                            "hitId": hit["HITId"],
                            "workerId": worker_id,
                            "turkSubmitTo": server.url,
                        }
                report.refused_on_mturk.append(worker_id)
                return None

            def submitted(index: int, params: dict) -> None:
                body = urllib.parse.urlencode({"assignmentId": params["assignmentId"]}).encode()
                url = f"{params['turkSubmitTo']}/mturk/externalSubmit"
                with urllib.request.urlopen(url, data=body, timeout=30) as response:
                    response.read()

            simulation = study_simulate(
                study=study,
                workers=workers,
                seed=seed,
                mode="mturk",
                accept=accept,
                submitted=submitted,
            )
            report.submitted = simulation.submitted
            sync = assignments_sync(study=study, client=client)
            report.sync = sync.lines()
            for assignment in study.assignments.filter(status="submitted"):
                assignment_approve(
                    mturk_assignment_id=assignment.mturk_assignment_id, client=client
                )
                report.approved += 1
            report.money = money_spent(study=study, environment="local")
        return report
    finally:
        server.stop()
