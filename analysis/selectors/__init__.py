"""Reads of the analysis: a study's rows as the numeric core's tables.

``study_task_table`` (``tasks``): the per-task table of ``analysis.frame``;
``study_likert_table`` (``likert``): the responses table of ``analysis.likert``; ``common``:
``study_round_table`` (``rounds``): what each refine round ran; the settings both use (included statuses, pseudonym salt, adjudication rule, conditions).
"""

from .common import DEFAULT_STATUSES, study_conditions, study_salt
from .likert import study_likert_table
from .rounds import study_round_table
from .tasks import study_task_table

__all__ = [
    "DEFAULT_STATUSES",
    "study_conditions",
    "study_likert_table",
    "study_round_table",
    "study_salt",
    "study_task_table",
]
