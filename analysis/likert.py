"""Questionnaire (Likert) summaries (seed 001, section 5.3 and Figure 5).

Responses table: one row per answer with columns ``question`` (code), ``value`` (integer,
1 = strongly disagree), and optionally ``condition`` (the condition of the task the answer is
about; a final-questionnaire answer may be repeated once per task of its assignment),
``is_xai``, ``query_class``, ``worker`` and ``points`` (5 or 6; default 6).

6-point scale (seed 001): 1 strongly disagree, 2 disagree, 3 slightly disagree, 4 slightly
agree, 5 agree, 6 strongly agree. "Agreed at some level" = 4-6, "agreed or strongly agreed"
= 5-6, as section 5.3 reports them.

5-point scale (seed 000): 1 strongly disagree, 2 disagree, 3 neutral, 4 agree, 5 strongly
agree. "Agreed at some level" = 4-5 (neutral is not agreement) and "agreed or strongly
agreed" = 4-5 as well, since the scale has no "slightly agree".

Normalisation (seed 001 Figure 5): ``(value - 1) / (points - 1)``, so on 6 points strongly
disagree 0.0, disagree 0.2, slightly disagree 0.4, slightly agree 0.6, agree 0.8, strongly
agree 1.0.
"""

from __future__ import annotations

from os import PathLike

import numpy as np
import pandas as pd

from analysis.frame import AnalysisError

__all__ = [
    "agreement_thresholds",
    "likert_summary",
    "normalise",
    "read_likert_csv",
    "validate_likert",
]


def agreement_thresholds(points: int) -> tuple[int, int]:
    """(lowest value of "agreed at some level", lowest value of "agreed or strongly agreed")."""
    if points == 6:
        return 4, 5
    if points == 5:
        return 4, 4
    raise AnalysisError(f"only 5- and 6-point Likert scales are supported, got {points}")


def normalise(values, points: int) -> np.ndarray:
    """Map Likert values 1..points onto [0, 1] (seed 001 Figure 5)."""
    return (np.asarray(values, dtype=float) - 1.0) / (points - 1)


def validate_likert(responses: pd.DataFrame) -> pd.DataFrame:
    """Check a responses table and return a typed copy (``points`` filled with 6 if absent).

    Raises
    ------
    AnalysisError
        Naming the missing column, or the line (header = line 1) of a value that is not an
        integer within its scale.
    """
    missing = [c for c in ("question", "value") if c not in responses.columns]
    if missing:
        raise AnalysisError(f"Likert responses: missing column(s): {', '.join(missing)}")
    out = responses.copy().reset_index(drop=True)
    if "points" not in out.columns:
        out["points"] = 6
    for name in ("value", "points"):
        numbers = pd.to_numeric(out[name], errors="coerce")
        bad = numbers.isna() | (numbers != np.round(numbers))
        if bad.any():
            at = int(bad.idxmax())
            raise AnalysisError(
                f"Likert responses: column {name!r}, line {at + 2}: "
                f"{responses[name].iloc[at]!r} is not an integer"
            )
        out[name] = numbers.astype(np.int64)
    for points in out["points"].unique():
        agreement_thresholds(int(points))
    bad = (out["value"] < 1) | (out["value"] > out["points"])
    if bad.any():
        at = int(bad.idxmax())
        raise AnalysisError(
            f"Likert responses: column 'value', line {at + 2}: {out['value'][at]} is outside "
            f"1..{out['points'][at]}"
        )
    if "condition" not in out.columns:
        out["condition"] = "all"
    out["question"] = out["question"].astype(str)
    out["condition"] = out["condition"].fillna("").astype(str)
    return out


def read_likert_csv(path: str | PathLike[str]) -> pd.DataFrame:
    """Read and validate a responses CSV (columns as in the module docstring)."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise AnalysisError(f"{path}: cannot read as CSV ({exc})") from exc
    try:
        return validate_likert(raw)
    except AnalysisError as exc:
        raise AnalysisError(f"{path}: {exc}") from exc


def likert_summary(responses: pd.DataFrame) -> pd.DataFrame:
    """Per question and condition: n, mean, median, distribution and agreement shares.

    Parameters
    ----------
    responses : DataFrame
        See the module docstring; validated here.

    Returns
    -------
    DataFrame
        One row per (question, condition) with ``points``, ``n``, ``mean`` and ``median``
        (on the 1..points scale), ``count_1`` .. ``count_6`` (answers per value; values above
        the scale stay 0), ``agreed_some`` and ``agreed_strong`` (fractions of ``n``, see the
        module docstring) and ``mean_normalised`` (the mean on [0, 1], Figure 5).

    Raises
    ------
    AnalysisError
        If a question is asked on two different scales, or the table is invalid or empty.
    """
    data = validate_likert(responses)
    if data.empty:
        raise AnalysisError("Likert responses: no answers")
    scales = data.groupby("question")["points"].nunique()
    mixed = sorted(scales[scales > 1].index)
    if mixed:
        raise AnalysisError(f"Likert responses: question(s) {mixed} appear on several scales")
    rows = []
    for (question, condition), part in data.groupby(["question", "condition"], sort=True):
        points = int(part["points"].iloc[0])
        values = part["value"].to_numpy()
        some, strong = agreement_thresholds(points)
        row = {
            "question": question,
            "condition": condition,
            "points": points,
            "n": int(values.size),
            "mean": float(values.mean()),
            "median": float(np.median(values)),
        }
        counts = np.bincount(values, minlength=7)
        row.update({f"count_{v}": int(counts[v]) for v in range(1, 7)})
        row["agreed_some"] = float(np.mean(values >= some))
        row["agreed_strong"] = float(np.mean(values >= strong))
        row["mean_normalised"] = float(normalise(values, points).mean())
        rows.append(row)
    return pd.DataFrame(rows)
