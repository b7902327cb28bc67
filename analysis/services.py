"""Run a study's analysis from the database and export it: the glue between the study's rows
(``analysis.selectors``) and the Django-free numeric core (``analysis.pipeline``,
``analysis.exports``, ``analysis.figures``).

Analysis settings come from ``Study.spec["analysis"]`` (all optional): ``permutations``
(default 10,000), ``alternative`` (``greater``), ``seed`` (the study's seed), ``groups``
(``["Cluttered", "Small"]``) and ``pseudonym_salt`` (see ``analysis.selectors``). Keyword arguments override them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.db.models import Count, Max

from analysis.errors import AnalysisError
from studyplatform.studies.models import Event, Response, Study

if TYPE_CHECKING:
    from analysis.pipeline import AnalysisResult

__all__ = [
    "EXPORT_FORMATS",
    "FIGURES",
    "analysis_download",
    "analysis_export",
    "analysis_figure",
    "analysis_run",
    "analysis_settings",
    "preference_question",
]

#: Export formats and the files of ``analysis.exports.write_analysis`` each one keeps
#: (``notes.txt`` is always written).
EXPORT_FORMATS: dict[str, tuple[str, ...]] = {
    "csv": (".csv",),
    "xlsx": (".xlsx",),
    "json": (".json",),
    "latex": (".tex",),
    "figures": (".png", ".svg"),
}
FIGURES = ("figure4", "figure5", "accuracy")
_CACHE_SECONDS = 600


def analysis_settings(*, study: Study, **overrides) -> dict:
    """The study's analysis settings (module docstring) with ``overrides`` (None ignored)."""
    spec = (study.spec or {}).get("analysis", {})
    chosen = {
        "n_permutations": int(spec.get("permutations", 10_000)),
        "alternative": str(spec.get("alternative", "greater")),
        "random_state": int(spec.get("seed", study.seed)),
        "groups": list(spec.get("groups", ["Cluttered", "Small"])),
    }
    chosen.update({k: v for k, v in overrides.items() if v is not None})
    return chosen


def _fingerprint(study: Study, settings: dict, pseudonymise: bool) -> str:
    """Changes whenever an event, an answer, an assignment status or the study changes."""
    events = Event.objects.filter(assignment__study=study).aggregate(n=Count("id"), last=Max("id"))
    answers = Response.objects.filter(assignment__study=study).aggregate(
        n=Count("id"), last=Max("id")
    )
    statuses = sorted(
        study.assignments.values("status").annotate(n=Count("id")).values_list("status", "n")
    )
    study_row = Study.objects.filter(pk=study.pk).values_list("updated_at", flat=True).first()
    text = repr(
        (study.pk, study_row, events, answers, statuses, sorted(settings.items()), pseudonymise)
    )
    return hashlib.sha256(text.encode()).hexdigest()


def analysis_run(
    *,
    study: Study,
    pseudonymise: bool = True,
    use_cache: bool = True,
    n_permutations: int | None = None,
    alternative: str | None = None,
    random_state: int | None = None,
) -> AnalysisResult:
    """Tables 1 and 2, permutation tests and Likert summaries of ``study``'s data.

    The result is cached (Django's cache, 10 minutes) under a fingerprint of the study's
    events, answers and assignment statuses, so a page load with no new data costs four small
    queries; ``use_cache=False`` recomputes.

    Returns
    -------
    AnalysisResult
        ``tasks`` holds pseudonymised worker ids unless ``pseudonymise`` is False.

    Raises
    ------
    AnalysisError
        Naming the study: no completed task yet, query classes that cannot be placed in
        superclasses, or invalid settings.
    """
    settings = analysis_settings(
        study=study,
        n_permutations=n_permutations,
        alternative=alternative,
        random_state=random_state,
    )
    key = f"analysis:{_fingerprint(study, settings, pseudonymise)}"
    if use_cache and (hit := cache.get(key)) is not None:
        return hit
    # pandas and the numeric core load here, on the first analysis, not with the URLconf.
    from analysis.pipeline import analysis_from_tasks
    from analysis.selectors import study_conditions, study_likert_table, study_task_table

    try:
        tasks = study_task_table(study=study, pseudonymise_workers=pseudonymise)
        if tasks.empty:
            raise AnalysisError("no completed search task of a submitted or approved HIT yet")
        responses = study_likert_table(study=study, pseudonymise_workers=pseudonymise)
        result = analysis_from_tasks(
            tasks,
            responses=None if responses.empty else responses,
            conditions=study_conditions(study=study),
            **settings,
        )
    except AnalysisError as exc:
        raise AnalysisError(f"study {study.slug}: {exc}") from exc
    cache.set(key, result, _CACHE_SECONDS)
    return result


def _check_formats(formats: Iterable[str]) -> list[str]:
    formats = list(formats)
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise AnalysisError(
            f"unknown export format(s) {unknown or '(none given)'}; choose from {', '.join(EXPORT_FORMATS)}"
        )
    return formats


def preference_question(*, study: Study, result: AnalysisResult) -> str | None:
    """The question code of seed 001 Figure 5 ("I would prefer to do it with saliency maps"):
    ``Study.spec["analysis"]["preference_question"]``, else ``prefer_with_xai``, else the one
    answered code starting with ``prefer_with``; None when there is no such answer."""
    from analysis.exports import PREFERENCE_QUESTION

    if result.responses is None:
        return None
    codes = set(result.responses["question"])
    given = (study.spec or {}).get("analysis", {}).get("preference_question")
    if given:
        return given if given in codes else None
    if PREFERENCE_QUESTION in codes:
        return PREFERENCE_QUESTION
    candidates = sorted(c for c in codes if c.startswith("prefer_with"))
    return candidates[0] if len(candidates) == 1 else None


def analysis_export(
    *,
    study: Study,
    out_dir: str | PathLike[str],
    formats: Iterable[str] = tuple(EXPORT_FORMATS),
    pseudonymise: bool = True,
    result: AnalysisResult | None = None,
) -> list[Path]:
    """Write ``study``'s analysis into ``out_dir`` in the chosen ``formats``.

    Files as ``analysis.exports.write_analysis`` names them, restricted to the formats
    (:data:`EXPORT_FORMATS`), plus ``notes.txt`` and, with ``csv``, ``responses.csv`` (the
    Likert answers, readable by ``manage.py analyze --likert``) and ``rounds.csv`` (what each
    refine round ran: ``analysis.selectors.study_round_table``). Everything is written to a
    temporary folder first; ``out_dir`` only receives complete files, and a failure leaves it
    as it was. Worker ids are pseudonymised (``analysis.selectors.study_salt``) unless
    ``pseudonymise`` is False.

    Returns
    -------
    list of Path
        The files written, sorted by name.
    """
    from analysis.exports import write_analysis
    from analysis.selectors import study_round_table

    formats = _check_formats(formats)
    result = result or analysis_run(study=study, pseudonymise=pseudonymise)
    suffixes = {s for f in formats for s in EXPORT_FORMATS[f]}
    question = preference_question(study=study, result=result)
    # write_analysis draws Figure 5 from ``responses``; give it the chosen question only.
    for_figures = dataclasses.replace(
        result,
        responses=None
        if question is None
        else result.responses[result.responses["question"] == question],
    )
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out_dir.parent) as tmp:
        staging = Path(tmp) / "out"
        written = write_analysis(
            for_figures, staging, keep_worker_ids=True, figures="figures" in formats
        )
        if "csv" in formats and result.responses is not None:
            result.responses.to_csv(staging / "responses.csv", index=False)
            written.append(staging / "responses.csv")
        if "csv" in formats:
            # What each refine round ran (scope, working set, seconds, maps on demand).
            study_round_table(study=study).to_csv(staging / "rounds.csv", index=False)
            written.append(staging / "rounds.csv")
        keep = [p for p in written if p.suffix in suffixes or p.name == "notes.txt"]
        out_dir.mkdir(exist_ok=True)
        for path in keep:
            shutil.move(os.fspath(path), os.fspath(out_dir / path.name))
    return sorted(out_dir / p.name for p in keep)


def analysis_download(*, study: Study, fmt: str) -> tuple[str, str, bytes]:
    """One download of the results page: (file name, content type, bytes).

    ``xlsx`` and ``json`` are the single workbook / document; ``csv`` and ``latex`` a ZIP of
    their files (with ``notes.txt``).
    """
    _check_formats([fmt])
    if fmt == "figures":
        raise AnalysisError("figures are served one by one (analysis_figure)")
    with tempfile.TemporaryDirectory(prefix="analysis-download-") as tmp:
        files = analysis_export(study=study, out_dir=Path(tmp) / "out", formats=[fmt])
        if fmt == "xlsx":
            name = f"{study.slug}-analysis.xlsx"
            mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            return name, mime, _only(files, ".xlsx").read_bytes()
        if fmt == "json":
            return (
                f"{study.slug}-analysis.json",
                "application/json",
                _only(files, ".json").read_bytes(),
            )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, arcname=f"{study.slug}-{fmt}/{path.name}")
        return f"{study.slug}-{fmt}.zip", "application/zip", buffer.getvalue()


def _only(files: list[Path], suffix: str) -> Path:
    return next(p for p in files if p.suffix == suffix)


def analysis_figure(*, study: Study, name: str, fmt: str = "png") -> bytes:
    """One figure of the study's analysis (:data:`FIGURES`) as PNG or SVG bytes.

    Raises
    ------
    AnalysisError
        Unknown name or format, or the figure's data is missing (the message says which).
    """
    if name not in FIGURES or fmt not in ("png", "svg"):
        raise AnalysisError(
            f"unknown figure {name}.{fmt}; figures: {', '.join(FIGURES)} (png or svg)"
        )
    from analysis.figures import figure4, figure5, figure_accuracy  # matplotlib: see exports

    result = analysis_run(study=study)
    if name == "figure4":
        figure = figure4(result.class_ratios.frame)
    elif name == "accuracy":
        figure = figure_accuracy(result.tasks)
    else:
        question = preference_question(study=study, result=result)
        if question is None:
            raise AnalysisError("figure5: no answers to a preference question yet")
        figure = figure5(result.responses, question=question)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=110)
    return buffer.getvalue()
