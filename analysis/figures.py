"""Figures 4 and 5 of seed 001 and the accuracy-per-round figure of seed 000 (Figure 4).

Figures are built as ``matplotlib.figure.Figure`` objects without pyplot (no global state, safe
in a web process) and rendered by the Agg backend to PNG and SVG. Each function returns the
figure, so a caller (or a test) can read the plotted data back from its artists.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.frame import AnalysisError, accuracy_columns
from analysis.likert import validate_likert

__all__ = ["BUBBLE_DIAMETER", "figure4", "figure5", "figure_accuracy", "save_figure"]

#: Marker diameter (points) of the class with the largest mean size in Figure 4.
BUBBLE_DIAMETER = 35.0
_COLOURS = {True: "tab:red", False: "tab:blue"}
_LABELS = {True: "with XAI", False: "without XAI"}


def save_figure(figure: Figure, stem: str | PathLike[str]) -> list[Path]:
    """Write ``<stem>.png`` (150 dpi) and ``<stem>.svg``; return the two paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    figure.savefig(paths[0], dpi=150, format="png")
    figure.savefig(paths[1], format="svg")
    return paths


def figure4(per_class: pd.DataFrame) -> Figure:
    """Seed 001 Figure 4: per class, positives found with / without XAI against clutter.

    Parameters
    ----------
    per_class : DataFrame
        Indexed by class name with columns ``ratio`` (x: mean nP with / without XAI, e.g.
        ``analysis.tables.class_ratios``), ``clutter`` (y: mean distinct classes per image)
        and ``size`` (mean instance area / image area). Classes with a NaN are left out.

    Returns
    -------
    Figure
        One scatter collection (offsets = (ratio, clutter); marker *diameter* proportional
        to size, ``BUBBLE_DIAMETER`` for the largest, as seed 001's caption says: "the
        relative diameter of each circle indicates the average size of the class"), a
        vertical line at x = 1.0 and a label per class.
    """
    missing = [c for c in ("ratio", "clutter", "size") if c not in per_class.columns]
    if missing:
        raise AnalysisError(f"Figure 4 needs column(s) {', '.join(missing)} per class")
    data = per_class[["ratio", "clutter", "size"]].dropna()
    if data.empty:
        raise AnalysisError("Figure 4: no class has a ratio, clutter and size")
    figure = Figure(figsize=(7.0, 5.0), layout="constrained")
    axes = figure.add_subplot()
    # matplotlib's s is the marker's area in points^2: the square of the diameter
    diameters = BUBBLE_DIAMETER * data["size"].to_numpy() / max(float(data["size"].max()), 1e-12)
    areas = diameters**2
    axes.scatter(data["ratio"], data["clutter"], s=areas, alpha=0.45, color="tab:green",
                 edgecolors="black", linewidths=0.5)  # fmt: skip
    axes.axvline(1.0, color="black", linestyle="--", linewidth=1.0)
    for name, row in data.iterrows():
        axes.annotate(
            str(name), (row["ratio"], row["clutter"]), fontsize=7, ha="center", va="center"
        )
    axes.set_xlabel("positives found, with XAI / without XAI")
    axes.set_ylabel("clutter (mean classes per image)")
    axes.set_title("Relative XAI gain vs. image class diversity")
    return figure


def figure5(responses: pd.DataFrame, *, question: str | None = None) -> Figure:
    """Seed 001 Figure 5: preference answers normalised to [0, 1], with vs without XAI.

    Parameters
    ----------
    responses : DataFrame
        Likert responses (``analysis.likert``) with an ``is_xai`` column (the condition of
        the task the answer belongs to). Grouped by ``query_class`` when present, otherwise a
        single group "all".
    question : str, optional
        The question code to plot; required when the table holds several questions.

    Returns
    -------
    Figure
        Two bar containers (with XAI, without XAI) whose heights are the mean normalised
        answers per group, in the order of the x tick labels (sorted group names); a group
        without answers in a condition has a NaN (undrawn) bar there, not a zero.
    """
    data = validate_likert(responses)
    if "is_xai" not in data.columns:
        raise AnalysisError("Figure 5 needs an 'is_xai' column in the Likert responses")
    questions = sorted(data["question"].unique())
    if question is None and len(questions) != 1:
        raise AnalysisError(f"Figure 5: choose one question of {questions}")
    question = questions[0] if question is None else question
    data = data[data["question"] == question]
    if data.empty:
        raise AnalysisError(f"Figure 5: no answers to question {question!r}")
    flags = data["is_xai"].astype(str).str.strip().str.lower().isin(["true", "1", "yes"])
    data = data.assign(
        group=data["query_class"].astype(str) if "query_class" in data.columns else "all",
        is_xai=flags,
        # seed 001 Figure 5: (value - 1) / (points - 1), row by row (scales may differ)
        score=(data["value"] - 1) / (data["points"] - 1),
    )
    means = data.groupby(["group", "is_xai"])["score"].mean().unstack()
    groups = sorted(means.index)
    figure = Figure(figsize=(max(5.0, 0.45 * len(groups) + 2), 4.0), layout="constrained")
    axes = figure.add_subplot()
    x = np.arange(len(groups))
    for offset, flag in ((-0.2, True), (0.2, False)):
        heights = (
            means.reindex(groups)[flag] if flag in means.columns else np.full(len(groups), np.nan)
        )
        axes.bar(x + offset, np.asarray(heights, dtype=float), width=0.4,
                 color=_COLOURS[flag], label=_LABELS[flag])  # fmt: skip
    axes.set_xticks(x, groups, rotation=60, ha="right", fontsize=8)
    axes.set_ylim(0, 1)
    axes.set_ylabel("mean answer, 0-1")
    axes.set_title(f"Preference: {question}")
    axes.legend()
    return figure


def figure_accuracy(tasks: pd.DataFrame) -> Figure:
    """Mean top-N retrieval accuracy after each IQR round, per condition (seed 000 Figure 4).

    Parameters
    ----------
    tasks : DataFrame
        Per-task table with ``acc_round_<r>`` columns (seed 000 Eq. 5, in [0, 1]); empty
        values (rounds not reached) are left out of the means.

    Returns
    -------
    Figure
        One line per condition name, x = round number, y = mean accuracy.
    """
    columns = accuracy_columns(tasks)
    if not columns:
        raise AnalysisError("the per-task table has no acc_round_<r> columns to plot")
    means = tasks.groupby("condition")[columns].mean()
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    axes = figure.add_subplot()
    rounds = np.arange(len(columns))
    for condition, row in means.iterrows():
        axes.plot(rounds, row.to_numpy(dtype=float), marker="o", label=str(condition))
    axes.set_xticks(rounds)
    axes.set_xlabel("IQR round (0 = initial search)")
    axes.set_ylabel("top-N retrieval accuracy")
    axes.set_ylim(0, 1)
    axes.legend()
    return figure
