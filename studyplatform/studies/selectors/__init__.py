"""Reads of the study app, split by sub-domain.

``studies``: studies, task pairs, progress, event and answer exports (re-exported here).
The worker's HIT: ``pools`` (candidate pools), ``events`` (what a task showed, its marks),
``search_tasks`` (rounds left, a task of an assignment), ``questionnaires``, ``hit_overlays``,
``hit_images`` (what the image view may serve) and ``hit_state`` (what the page renders).
Those are imported from their modules; this package re-exports only the researcher's reads.
"""

from .studies import (
    CellProgress,
    StudyProgress,
    event_list,
    participant_label,
    response_list,
    study_list,
    study_progress,
    study_visible_ids,
    task_pair_list,
)

__all__ = [
    "CellProgress",
    "StudyProgress",
    "event_list",
    "participant_label",
    "response_list",
    "study_list",
    "study_progress",
    "study_visible_ids",
    "task_pair_list",
]
