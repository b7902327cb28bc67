"""The per-task table: one row per completed search task, the input of every analysis.

Schema (:data:`TASK_COLUMNS`; units in brackets):

==================  ========  ==========================================================
column              type      meaning
==================  ========  ==========================================================
study               str       study slug
worker              str       worker id or its pseudonym (exports hash it, see ``exports``)
assignment          str       assignment id (one assignment = one task pair = one HIT)
task_pair           str       task-pair id
position            int       1 or 2: order of the task inside the HIT
condition           str       condition name, e.g. ``no-xai`` or ``sbsm``
is_xai              bool      True when the condition shows explanations
query_image         str       archive image id of the query
query_class         str       target class the worker searches for
nP                  int       positives found: marked relevant and truly holding the class
claimed_positives   int       images marked relevant at the end (true or not)
precision           float     nP / claimed_positives; empty when nothing was claimed
nA                  int       images adjudicated: holding a (not-)relevant judgement at the end
T                   float     [s] from the first results shown to the end of the task
rounds_used         int       IQR refines the worker asked for
==================  ========  ==========================================================

Optional columns: ``judgement_events`` (every relevant / not-relevant judgement event, a
change of mind counted again; not seed 001's nA); ``acc_round_0``, ``acc_round_1``, ... (top-N retrieval accuracy after each
round, seed 000 Eq. 5, in [0, 1], empty after the last round used); ``superclass`` (CL, CS, UL
or US), ``clutter`` and ``size`` (per-class statistics of the archive, see
``retrieval.statistics``). Exports write them all so that an export reads back unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike

import numpy as np
import pandas as pd

from analysis.errors import AnalysisError

__all__ = [
    "NUMERIC_COLUMNS",
    "TASK_COLUMNS",
    "AnalysisError",
    "accuracy_columns",
    "read_tasks_csv",
    "validate_tasks",
]


TASK_COLUMNS: tuple[str, ...] = (
    "study",
    "worker",
    "assignment",
    "task_pair",
    "position",
    "condition",
    "is_xai",
    "query_image",
    "query_class",
    "nP",
    "claimed_positives",
    "precision",
    "nA",
    "T",
    "rounds_used",
)
#: Columns that must hold numbers; ``precision`` may be empty (nothing claimed).
NUMERIC_COLUMNS: tuple[str, ...] = (
    "position",
    "nP",
    "claimed_positives",
    "precision",
    "nA",
    "T",
    "rounds_used",
)
_INTEGER_COLUMNS = ("position", "nP", "claimed_positives", "nA", "rounds_used")
_TEXT_COLUMNS = ("study", "worker", "assignment", "task_pair", "condition", "query_image")
_OPTIONAL_NUMERIC = ("judgement_events", "clutter", "size")
_ACCURACY = re.compile(r"^acc_round_(\d+)$")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def accuracy_columns(tasks: pd.DataFrame) -> list[str]:
    """The ``acc_round_<r>`` columns of ``tasks``, sorted by round number."""
    found = [(int(m.group(1)), c) for c in tasks.columns if (m := _ACCURACY.match(str(c)))]
    return [c for _, c in sorted(found)]


def _row_label(index: object) -> str:
    # CSV rows are numbered as a spreadsheet shows them: header = line 1.
    return f"line {index + 2}" if isinstance(index, int | np.integer) else f"row {index!r}"


def _parse_bool(column: pd.Series) -> pd.Series:
    text = column.astype("string").str.strip().str.lower()
    bad = ~(text.isin(_TRUE) | text.isin(_FALSE))
    if bad.any():
        at = bad.idxmax()
        raise AnalysisError(
            f"column 'is_xai', {_row_label(at)}: {column[at]!r} is not a boolean "
            "(use true/false, 1/0 or yes/no)"
        )
    return text.isin(_TRUE).astype(bool)


def _parse_number(tasks: pd.DataFrame, name: str, *, allow_empty: bool) -> pd.Series:
    raw = tasks[name]
    values = pd.to_numeric(raw, errors="coerce")
    missing = raw.isna() | (raw.astype("string").str.strip() == "")
    bad = values.isna() & ~missing
    if not allow_empty:
        bad |= missing
    bad |= ~missing & ~np.isfinite(values.fillna(0.0).astype(float))
    if bad.any():
        at = bad.idxmax()
        raise AnalysisError(
            f"column {name!r}, {_row_label(at)}: {raw[at]!r} is not a finite number"
        )
    return values.astype(float)


def validate_tasks(
    tasks: pd.DataFrame, *, conditions: Mapping[str, bool] | None = None
) -> pd.DataFrame:
    """Check a per-task table and return a typed copy.

    Parameters
    ----------
    tasks : DataFrame
        One row per completed search task with at least :data:`TASK_COLUMNS`.
    conditions : mapping of str to bool, optional
        The study's condition names and whether each shows explanations. When given, any
        other name in ``condition`` is an error; when omitted, each name must come with a
        single ``is_xai`` value throughout.

    Returns
    -------
    DataFrame
        A copy with integer, float, bool and str columns, index 0..n-1.

    Raises
    ------
    AnalysisError
        Naming the missing column, or the column and line (header = line 1) of a bad value.
    """
    missing = [c for c in TASK_COLUMNS if c not in tasks.columns]
    if missing:
        raise AnalysisError(f"missing column(s): {', '.join(missing)}")
    if tasks.empty:
        raise AnalysisError("the per-task table has no rows")
    out = tasks.copy()
    for name in (*_TEXT_COLUMNS, "query_class"):
        blank = out[name].isna() | (out[name].astype("string").str.strip() == "")
        if name in ("condition", "query_class", "worker") and blank.any():
            raise AnalysisError(f"column {name!r}, {_row_label(blank.idxmax())}: empty value")
        out[name] = out[name].astype("string").str.strip().fillna("").astype(object)
    for name in NUMERIC_COLUMNS:
        out[name] = _parse_number(out, name, allow_empty=name == "precision")
    for name in _INTEGER_COLUMNS:
        frac = out[name] != np.round(out[name])
        negative = out[name] < 0
        if (frac | negative).any():
            at = (frac | negative).idxmax()
            raise AnalysisError(
                f"column {name!r}, {_row_label(at)}: {tasks[name][at]!r} is not a count (>= 0)"
            )
        out[name] = out[name].astype(np.int64)
    if (out["T"] < 0).any():
        raise AnalysisError(f"column 'T', {_row_label((out['T'] < 0).idxmax())}: negative time")
    bad_position = ~out["position"].isin([1, 2])
    if bad_position.any():
        raise AnalysisError(f"column 'position', {_row_label(bad_position.idxmax())}: not 1 or 2")
    out["is_xai"] = _parse_bool(out["is_xai"])
    for name in (*_OPTIONAL_NUMERIC, *accuracy_columns(out)):
        if name in out.columns:
            out[name] = _parse_number(out, name, allow_empty=True)
    if "superclass" in out.columns:
        out["superclass"] = out["superclass"].astype("string").str.strip().str.upper()
        bad = ~out["superclass"].isin(["CL", "CS", "UL", "US"])
        if bad.any():
            at = bad.idxmax()
            raise AnalysisError(
                f"column 'superclass', {_row_label(at)}: {tasks['superclass'][at]!r} is not "
                "one of CL, CS, UL, US"
            )
        out["superclass"] = out["superclass"].astype(object)
    _check_conditions(out, conditions)
    return out.reset_index(drop=True)


def _check_conditions(tasks: pd.DataFrame, conditions: Mapping[str, bool] | None) -> None:
    if conditions is not None:
        unknown = ~tasks["condition"].isin(list(conditions))
        if unknown.any():
            at = unknown.idxmax()
            raise AnalysisError(
                f"column 'condition', {_row_label(at)}: unknown condition "
                f"{tasks['condition'][at]!r} (known: {', '.join(sorted(conditions))})"
            )
        expected = tasks["condition"].map(lambda name: bool(conditions[name]))
        wrong = expected != tasks["is_xai"]
        if wrong.any():
            at = wrong.idxmax()
            raise AnalysisError(
                f"column 'is_xai', {_row_label(at)}: condition {tasks['condition'][at]!r} "
                f"has is_xai={bool(conditions[tasks['condition'][at]])}"
            )
        return
    kinds = tasks.groupby("condition")["is_xai"].nunique()
    mixed = sorted(kinds[kinds > 1].index)
    if mixed:
        raise AnalysisError(
            f"column 'condition': {', '.join(map(repr, mixed))} appear(s) with both is_xai "
            "values; a condition either shows explanations or does not"
        )


def read_tasks_csv(
    path: str | PathLike[str], *, conditions: Mapping[str, bool] | None = None
) -> pd.DataFrame:
    """Read and validate a per-task CSV in the export's format (see the module docstring).

    Parameters
    ----------
    path : path-like
        CSV file with a header line.
    conditions : mapping of str to bool, optional
        See :func:`validate_tasks`.

    Returns
    -------
    DataFrame
        The validated table.

    Raises
    ------
    AnalysisError
        When the file cannot be read as CSV or a value is invalid; the message names the file.
    """
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise AnalysisError(f"{path}: cannot read as CSV ({exc})") from exc
    try:
        return validate_tasks(raw, conditions=conditions)
    except AnalysisError as exc:
        raise AnalysisError(f"{path}: {exc}") from exc
