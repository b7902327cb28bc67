"""The MTurk app's reactions to the studies core, connected in ``MturkConfig.ready()``."""

from __future__ import annotations

from studyplatform.outbox.services import outbox_enqueue
from studyplatform.studies.models import Assignment, Participant

from .tasks import mturk_participation_grant


def participation_grant_on_start(*, assignment: Assignment, **_: object) -> None:
    """On a new assignment of an MTurk worker in a study with MTurk settings, queue the grant
    of the study's "participated" qualification, so the worker cannot take another HIT of the
    study (seed 001: one HIT per worker). Through the outbox, in the assignment's own
    transaction: a broker outage neither fails the worker's request nor loses the grant."""
    if assignment.participant.source == Participant.Source.MTURK and assignment.study.mturk:
        outbox_enqueue(
            task=mturk_participation_grant.name,
            args=[assignment.pk],
            key=f"participation-grant:{assignment.pk}",
        )
