"""Opening a worker's HIT: the assignment a browser session is bound to.

Wraps ``assignments.assignment_start`` (the counterbalanced cell, a returning worker's own
assignment) with the checks the worker pages need, and turns its refusals into
:class:`~studyplatform.studies.errors.HitRefused` with the status the page answers with.
"""

from __future__ import annotations

from ..errors import HitRefused
from ..models import Assignment, Participant, Study

_REASONS = {
    "not_live": "This study is not taking part in new work at the moment.",
    "already_done": "You have already taken part in this study; it can be done only once.",
    "no_cell": "Every place in this study is taken; please return the HIT.",
    "expired": "This assignment was returned or given up; please accept the HIT again.",
    "busy": (
        "Many people have opened this study in the last minutes and not begun yet; please "
        "try again in a quarter of an hour."
    ),
    "bound_elsewhere": (
        "Your work on this study is open under another MTurk assignment; finish it there, or "
        "return that HIT and come back once it has expired."
    ),
}


def lab_code_check(*, study: Study, code: str | None = None) -> None:
    """Refuse (:class:`HitRefused`, 403) lab mode for a study that has not enabled it, and a
    code that is not one of the study's ``lab_codes`` when it lists them."""
    if not study.lab_enabled:
        raise HitRefused("This study does not take lab participants.", status=403)
    if code is not None and study.lab_codes and code not in study.lab_codes:
        raise HitRefused("This participant code is not one of this study's.", status=403)


def hit_assignment_open(
    *,
    study: Study,
    source: str,
    external_id: str,
    mturk_assignment_id: str = "",
    hit_id: str = "",
    turk_submit_to: str = "",
) -> Assignment:
    """The participant's assignment of ``study``, started now or resumed (or, for an MTurk
    assignment already submitted, that assignment, so its page can send the form again).

    Raises :class:`HitRefused`: 403 when the MTurk assignment id already belongs to another
    worker or study, or for lab mode the study does not allow (:func:`lab_code_check`); 400 for ids ``assignment_start`` finds malformed; 409 when it refuses
    otherwise (study not live, done before, no cell left, an expired assignment, an active
    assignment bound to another MTurk assignment id), with a sentence for the worker.
    """
    from .assignments import AssignmentRefused, assignment_start

    if source == Participant.Source.LAB:
        lab_code_check(study=study, code=external_id)
    if mturk_assignment_id:
        held = (
            Assignment.objects.filter(mturk_assignment_id=mturk_assignment_id)
            .select_related("participant", "study")
            .first()
        )
        if held is not None and (
            held.study_id != study.pk
            or held.participant.external_id != external_id
            or held.participant.source != Participant.Source.MTURK
        ):
            raise HitRefused("this assignment id belongs to another worker or study", status=403)
        if held is not None and held.status == Assignment.Status.SUBMITTED:
            # Submitted here but perhaps never received by MTurk (the form POST failed): the
            # page shows the submit form again; nothing more can be recorded.
            return held
    try:
        return assignment_start(
            study=study,
            source=source,
            external_id=external_id,
            mturk_assignment_id=mturk_assignment_id,
            hit_id=hit_id,
            turk_submit_to=turk_submit_to,
        )
    except AssignmentRefused as refused:
        status = 400 if refused.reason == AssignmentRefused.BAD_REQUEST else 409
        raise HitRefused(_REASONS.get(refused.reason, str(refused)), status=status) from None
