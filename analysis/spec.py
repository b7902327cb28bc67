"""The ``analysis`` block of the study spec: options of ``analysis.services.analysis_run``.

Registered by :class:`~analysis.apps.AnalysisConfig` as the spec's ``analysis`` block; only
the fields a spec gives are kept, since the defaults (``seed``: the study's) are the
analysis's to choose when it runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from studyplatform.studies.spec_types import SpecModel, Text

__all__ = ["AnalysisSpec"]

GROUPS = ("Cluttered", "Uncluttered", "Large", "Small")


class AnalysisSpec(SpecModel):
    """How the study's data is tested (seed 001 section 5: stratified permutation tests)."""

    permutations: int = Field(10_000, ge=1, le=1_000_000, description="Permutations of each test.")
    alternative: Literal["greater", "less", "two-sided"] = Field(
        "greater", description="The tests' alternative hypothesis (with-XAI against no-XAI)."
    )
    seed: int | None = Field(
        None, ge=0, le=2**32 - 1, description="Seeds the permutations (default: the study's seed)."
    )
    groups: list[Literal[GROUPS]] = Field(  # type: ignore[valid-type]
        ["Cluttered", "Small"],
        description="Superclass groups tested on their own.",
    )
    pseudonym_salt: Text(200, required=True) | None = Field(
        None, description="Salt of the worker pseudonyms in exports (default: the study's own)."
    )
    preference_question: Text(200, required=True) | None = Field(
        None,
        description="Code of the final question whose answer is the preference for maps "
        "(default: prefer_with_xai, or the only final Likert question).",
    )
