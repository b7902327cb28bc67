"""The per-task CSV: read back in the export's format, refused with a clear message otherwise."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.frame import TASK_COLUMNS, AnalysisError, read_tasks_csv, validate_tasks
from analysis.synthetic import synthetic_tasks


@pytest.fixture
def tasks() -> pd.DataFrame:
    return synthetic_tasks(12, random_state=3)


def write(frame: pd.DataFrame, tmp_path) -> str:
    path = tmp_path / "tasks.csv"
    frame.to_csv(path, index=False)
    return str(path)


def test_a_written_table_reads_back_with_its_types_and_values(tasks, tmp_path):
    read = read_tasks_csv(write(tasks, tmp_path))

    assert list(read.columns) == list(tasks.columns)
    assert read["nP"].dtype.kind == "i"
    assert read["is_xai"].dtype == bool
    pd.testing.assert_series_equal(read["T"], tasks["T"], check_dtype=False)
    assert read["is_xai"].tolist() == tasks["is_xai"].tolist()


def test_a_missing_column_is_named(tasks, tmp_path):
    with pytest.raises(AnalysisError, match=r"missing column\(s\): nA, T"):
        read_tasks_csv(write(tasks.drop(columns=["nA", "T"]), tmp_path))


def test_a_non_numeric_value_is_named_with_its_column_and_line(tasks, tmp_path):
    tasks = tasks.astype({"nA": object})
    tasks.loc[4, "nA"] = "lots"

    with pytest.raises(AnalysisError, match=r"column 'nA', line 6: 'lots' is not a finite number"):
        read_tasks_csv(write(tasks, tmp_path))


def test_an_unknown_condition_is_named(tasks, tmp_path):
    tasks.loc[2, "condition"] = "rise"

    with pytest.raises(AnalysisError, match=r"line 4: unknown condition 'rise'"):
        read_tasks_csv(write(tasks, tmp_path), conditions={"sbsm": True, "no-xai": False})


def test_a_condition_with_both_xai_flags_is_refused(tasks):
    tasks.loc[[0, 1], "condition"] = "no-xai"
    tasks.loc[0, "is_xai"], tasks.loc[1, "is_xai"] = True, False

    with pytest.raises(AnalysisError, match="'no-xai' appear"):
        validate_tasks(tasks)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("is_xai", "maybe", "is not a boolean"),
        ("position", 3, "not 1 or 2"),
        ("nP", -1, "is not a count"),
        ("nP", 2.5, "is not a count"),
        ("query_class", "", "empty value"),
        ("superclass", "XL", "is not one of CL, CS, UL, US"),
    ],
)
def test_bad_values_are_refused_with_the_column_named(tasks, column, value, message):
    tasks = tasks.astype({column: object})
    tasks.loc[1, column] = value

    with pytest.raises(AnalysisError, match=rf"column '{column}', line 3: .*{message}"):
        validate_tasks(tasks)


def test_a_file_that_is_not_csv_is_named(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")

    with pytest.raises(AnalysisError, match=r"empty\.csv: cannot read as CSV"):
        read_tasks_csv(path)


def test_the_schema_names_the_paper_attributes():
    assert {"nP", "nA", "T", "query_class", "is_xai"} <= set(TASK_COLUMNS)
