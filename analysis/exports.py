"""Write an analysis to a folder: CSV, one XLSX workbook, JSON, LaTeX and figures.

Files (``write_analysis``): ``tasks.csv`` (the per-task table in the format
``analysis.frame.read_tasks_csv`` reads back), ``table1.csv``, ``table2.csv``, ``tests.csv``,
``class_ratios.csv``, ``order_effects.csv`` (nP, nA, T by position and condition), ``likert.csv`` (with responses), ``analysis.xlsx`` (one sheet per table
plus ``notes``), ``analysis.json``, ``table1.tex``, ``table2.tex``, ``tests.tex``,
``notes.txt`` and, unless switched off, ``figure4``, ``figure5`` and ``accuracy`` as PNG and
SVG (each when its data is there; otherwise a note says why).

Everything is written to a temporary folder beside ``out_dir`` first and moved in only when
all files are complete, so a failure leaves ``out_dir`` as it was.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import shutil
import tempfile
from os import PathLike
from pathlib import Path

import pandas as pd

from analysis.frame import TASK_COLUMNS, AnalysisError, accuracy_columns
from analysis.pipeline import AnalysisResult

__all__ = ["PREFERENCE_QUESTION", "flat_table", "pseudonymise", "write_analysis"]

#: Question code of the Figure 5 statement ("If given the option to redo the task, I would
#: prefer to do it with saliency maps rather than without"), used when present.
PREFERENCE_QUESTION = "prefer_with_xai"


def pseudonymise(worker_ids: pd.Series, *, salt: str) -> pd.Series:
    """``w-`` + the first 16 hex digits of SHA-256(salt + ":" + id), per worker id.

    The same salt gives the same pseudonym for the same worker, so exports of one study can
    be joined; without the salt the ids cannot be recovered by hashing candidate ids.
    """
    if not salt:
        raise AnalysisError("pseudonymising worker ids needs a non-empty salt")

    def one(worker: object) -> str:
        digest = hashlib.sha256(f"{salt}:{worker}".encode()).hexdigest()
        return f"w-{digest[:16]}"

    return worker_ids.astype(str).map(one)


def flat_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A paper-layout table with its two-level columns joined (``with-XAI size(L)``) and
    its index as ordinary columns: the form written to CSV and XLSX."""
    flat = frame.copy()
    flat.columns = [" ".join(str(part) for part in c) if isinstance(c, tuple) else str(c)
                    for c in flat.columns]  # fmt: skip
    return flat.reset_index()


def _records(frame: pd.DataFrame) -> list[dict]:
    rows = frame.to_dict("records")
    return [
        {
            str(k): (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in r.items()
        }
        for r in rows
    ]


def _percent(value: float) -> str:
    return f"{100.0 * value:.1f}\\%"


def _latex(frame: pd.DataFrame, caption: str, formats: dict | None = None, **options) -> str:
    """LaTeX via pandas' Styler: two decimals, empty cells for NaN; ``formats`` maps a
    column label (or the first level of a two-level label) to a format for that column."""
    styler = frame.style.format(precision=2, na_rep="")
    for column in frame.columns:
        key = column[0] if isinstance(column, tuple) else column
        if formats and key in formats:
            styler = styler.format(formats[key], subset=[column], na_rep="")
    if options.pop("hide_index", False):
        styler = styler.hide(axis="index")
    return styler.to_latex(caption=caption, hrules=True, multicol_align="c", **options)


def _tasks_for_export(
    result: AnalysisResult, salt: str | None, keep_worker_ids: bool
) -> pd.DataFrame:
    tasks = result.tasks.copy()
    if not keep_worker_ids:
        tasks["worker"] = pseudonymise(tasks["worker"], salt=salt or secrets.token_hex(16))
    extra = [c for c in ("superclass", "clutter", "size") if c in tasks.columns]
    order = [*TASK_COLUMNS, *extra, *accuracy_columns(tasks)]
    rest = [c for c in tasks.columns if c not in order]
    return tasks[order + rest]


def _figures(result: AnalysisResult, folder: Path) -> tuple[list[Path], list[str]]:
    # matplotlib is loaded by the first figure drawn, not by every process that imports the
    # exports (a web process serving tables only never draws).
    from analysis.figures import figure4, figure5, figure_accuracy, save_figure

    written, notes = [], []
    jobs = [("figure4", lambda: figure4(result.class_ratios.frame)),
            ("accuracy", lambda: figure_accuracy(result.tasks))]  # fmt: skip
    if result.responses is not None:
        questions = set(result.responses["question"])
        question = PREFERENCE_QUESTION if PREFERENCE_QUESTION in questions else None
        jobs.append(("figure5", lambda: figure5(result.responses, question=question)))
    else:
        notes.append("figure5 not drawn: no Likert responses given")
    for name, build in jobs:
        try:
            written += save_figure(build(), folder / name)
        except AnalysisError as exc:
            notes.append(f"{name} not drawn: {exc}")
    return written, notes


def write_analysis(
    result: AnalysisResult,
    out_dir: str | PathLike[str],
    *,
    salt: str | None = None,
    keep_worker_ids: bool = False,
    figures: bool = True,
) -> list[Path]:
    """Write every table, test, summary and figure of ``result`` into ``out_dir``.

    Parameters
    ----------
    result : AnalysisResult
    out_dir : path-like
        Created if missing; files of the same names are replaced.
    salt : str, optional
        Salt of the worker pseudonyms; a random one when omitted (pseudonyms then differ
        between exports).
    keep_worker_ids : bool, default False
        Write the worker ids as they are instead of pseudonyms.
    figures : bool, default True

    Returns
    -------
    list of Path
        The files written, in ``out_dir``.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tables = {
        "table1": flat_table(result.table1.frame),
        "table2": flat_table(result.table2.frame),
        "tests": result.tests,
        "class_ratios": result.class_ratios.frame.reset_index(),
    }
    if result.order_effects is not None:
        tables["order_effects"] = result.order_effects
    if result.likert is not None:
        tables["likert"] = result.likert
    notes = list(result.notes)
    with tempfile.TemporaryDirectory(prefix=".analysis-", dir=out_dir.parent) as tmp:
        folder = Path(tmp)
        tasks = _tasks_for_export(result, salt, keep_worker_ids)
        tasks.to_csv(folder / "tasks.csv", index=False)
        for name, frame in tables.items():
            frame.to_csv(folder / f"{name}.csv", index=False)
        if figures:
            _, figure_notes = _figures(result, folder)
            notes += figure_notes
        with pd.ExcelWriter(folder / "analysis.xlsx", engine="openpyxl") as workbook:
            tasks.to_excel(workbook, sheet_name="tasks", index=False)
            for name, frame in tables.items():
                frame.to_excel(workbook, sheet_name=name, index=False)
            pd.DataFrame({"note": notes}).to_excel(workbook, sheet_name="notes", index=False)
        payload = {"parameters": result.parameters, "cells": result.cells, "notes": notes,
                   "table1": _records(result.table1.long), "table2": _records(result.table2.long),
                   **{name: _records(tables[name]) for name in ("tests", "class_ratios", "likert")
                      if name in tables}}  # fmt: skip
        (folder / "analysis.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
        (folder / "table1.tex").write_text(
            _latex(result.table1.frame, "Query distribution (Table 1).")
        )
        (folder / "table2.tex").write_text(
            _latex(
                result.table2.frame,
                "With / without-XAI ratios and XAI gains (Table 2).",
                {"XAI gain for": _percent},
            )
        )
        (folder / "tests.tex").write_text(
            _latex(
                result.tests.drop(columns=["note"]),
                "Stratified permutation tests.",
                {"gain": _percent, "p_value": "{:.4f}"},
                hide_index=True,
            )
        )
        (folder / "notes.txt").write_text("".join(f"{note}\n" for note in notes))
        out_dir.mkdir(exist_ok=True)
        written = []
        for path in sorted(folder.iterdir()):
            target = out_dir / path.name
            shutil.move(os.fspath(path), os.fspath(target))
            written.append(target)
    return written
