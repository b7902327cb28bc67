"""``manage.py analyze --from-csv``: an export round-trips; bad input is a CommandError."""

from __future__ import annotations

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from analysis.exports import write_analysis
from analysis.pipeline import analysis_from_tasks
from analysis.synthetic import synthetic_likert, synthetic_tasks


def test_an_export_analysed_again_gives_the_same_tables(tmp_path, capsys):
    tasks = synthetic_tasks(150, random_state=4)
    result = analysis_from_tasks(tasks, n_permutations=300, random_state=1)
    write_analysis(result, tmp_path / "first", salt="s", figures=False)

    call_command("analyze", from_csv=str(tmp_path / "first" / "tasks.csv"),
                 out=str(tmp_path / "second"), permutations=300, seed=1, no_figures=True)  # fmt: skip

    for name in ("table1.csv", "table2.csv", "tests.csv", "class_ratios.csv"):
        first = pd.read_csv(tmp_path / "first" / name)
        second = pd.read_csv(tmp_path / "second" / name)
        pd.testing.assert_frame_equal(first, second, check_exact=False, rtol=1e-12)
    assert "Analysed 300 tasks" in capsys.readouterr().out


def test_likert_answers_and_paper_superclasses_are_used_when_given(tmp_path):
    tasks = synthetic_tasks(60, random_state=4).drop(columns=["superclass", "clutter", "size"])
    tasks.to_csv(tmp_path / "tasks.csv", index=False)
    synthetic_likert(tasks).to_csv(tmp_path / "likert.csv", index=False)

    call_command("analyze", from_csv=str(tmp_path / "tasks.csv"), likert=str(tmp_path / "likert.csv"),
                 superclasses="paper", out=str(tmp_path / "out"), permutations=100)  # fmt: skip

    likert = pd.read_csv(tmp_path / "out" / "likert.csv")
    assert set(likert["question"]) == {"prefer_with_xai", "understood_questions", "easy_to_use"}
    assert (tmp_path / "out" / "figure5.png").stat().st_size > 0
    assert set(pd.read_csv(tmp_path / "out" / "tasks.csv")["superclass"]) == {
        "CL",
        "CS",
        "UL",
        "US",
    }


def test_a_csv_with_a_missing_column_is_a_command_error_and_writes_nothing(tmp_path):
    synthetic_tasks(10).drop(columns=["nP"]).to_csv(tmp_path / "tasks.csv", index=False)

    with pytest.raises(CommandError, match=r"tasks.csv: missing column\(s\): nP"):
        call_command("analyze", from_csv=str(tmp_path / "tasks.csv"), out=str(tmp_path / "out"))

    assert not (tmp_path / "out").exists()


def test_an_unknown_condition_is_a_command_error(tmp_path):
    synthetic_tasks(10).to_csv(tmp_path / "tasks.csv", index=False)

    with pytest.raises(CommandError, match="unknown condition 'sbsm'"):
        call_command("analyze", from_csv=str(tmp_path / "tasks.csv"), out=str(tmp_path / "out"),
                     condition=["rise=xai", "no-xai=none"])  # fmt: skip


def test_groups_too_small_to_test_are_reported_as_notes_not_a_crash(tmp_path, capsys):
    tasks = synthetic_tasks(40, random_state=1)
    tasks[~tasks["superclass"].isin(["CS", "US"])].to_csv(tmp_path / "tasks.csv", index=False)

    call_command("analyze", from_csv=str(tmp_path / "tasks.csv"), out=str(tmp_path / "out"),
                 permutations=100, no_figures=True)  # fmt: skip

    err = capsys.readouterr().err
    assert "note: nP, group Small: too few data points" in err
    assert "Table 2: nP ratio of cell CS is undefined" in err
    assert "too few data points" in (tmp_path / "out" / "notes.txt").read_text()
