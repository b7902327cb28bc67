"""Exports: every format written, workers pseudonymised, nothing half-written."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from analysis.exports import pseudonymise, write_analysis
from analysis.frame import read_tasks_csv
from analysis.pipeline import analysis_from_tasks
from analysis.synthetic import synthetic_likert, synthetic_tasks

SHEETS = {"tasks", "table1", "table2", "tests", "class_ratios", "order_effects", "likert", "notes"}


@pytest.fixture(scope="module")
def result():
    tasks = synthetic_tasks(120, random_state=2)
    return analysis_from_tasks(tasks, responses=synthetic_likert(tasks), n_permutations=200)


def test_the_workbook_opens_with_pandas_and_holds_every_sheet(result, tmp_path):
    write_analysis(result, tmp_path / "out", salt="s", figures=False)

    sheets = pd.read_excel(tmp_path / "out" / "analysis.xlsx", sheet_name=None)

    assert set(sheets) == SHEETS
    assert len(sheets["tasks"]) == 240
    assert sheets["table2"].iloc[0]["ratio XAI/no-XAI size(L)"] == pytest.approx(
        result.table2.frame.iloc[0, 0]
    )


def test_every_format_and_figure_is_written(result, tmp_path):
    written = {p.name for p in write_analysis(result, tmp_path / "out", salt="s")}

    expected = {"tasks.csv", "table1.csv", "table2.csv", "tests.csv", "class_ratios.csv",
                "order_effects.csv", "likert.csv", "analysis.xlsx", "analysis.json", "table1.tex", "table2.tex",
                "tests.tex", "notes.txt"}  # fmt: skip
    expected |= {
        f"{name}.{ext}" for name in ("figure4", "figure5", "accuracy") for ext in ("png", "svg")
    }
    assert written == expected
    payload = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert {row["group"] for row in payload["tests"]} == {"Cluttered", "Small"}
    assert "\\%" in (tmp_path / "out" / "table2.tex").read_text()


def test_worker_ids_are_replaced_by_salted_hashes_unless_kept(result, tmp_path):
    write_analysis(result, tmp_path / "a", salt="s1", figures=False)
    write_analysis(result, tmp_path / "b", salt="s2", figures=False)
    write_analysis(result, tmp_path / "c", keep_worker_ids=True, figures=False)

    a, b, c = (read_tasks_csv(tmp_path / d / "tasks.csv")["worker"] for d in "abc")
    assert not set(a) & set(result.tasks["worker"])
    assert a.str.fullmatch(r"w-[0-9a-f]{16}").all()
    assert (a != b).all()  # another salt, other pseudonyms
    assert a.nunique() == result.tasks["worker"].nunique()
    assert c.tolist() == result.tasks["worker"].tolist()


def test_the_same_salt_gives_the_same_pseudonym():
    ids = pd.Series(["W1", "W2", "W1"])

    assert pseudonymise(ids, salt="x").tolist()[0] == pseudonymise(ids, salt="x").tolist()[2]


def test_a_failing_export_leaves_the_folder_as_it_was(result, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    # fails after the CSV files and the workbook are written, before the LaTeX
    monkeypatch.setattr("analysis.exports._latex", broken)
    with pytest.raises(OSError, match="disk full"):
        write_analysis(result, out, salt="s", figures=False)

    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left
