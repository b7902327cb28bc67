"""``analysis_run`` / ``analysis_export`` and ``manage.py export_analysis`` on a tiny study."""

from __future__ import annotations

import io
import zipfile

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from analysis.frame import AnalysisError, read_tasks_csv
from analysis.services import analysis_download, analysis_export, analysis_run
from tests.analysis.test_study_selectors import build_study, played_study

SHEETS = {"tasks", "table1", "table2", "tests", "class_ratios", "order_effects", "likert", "notes"}


@pytest.fixture
def study(db):
    return played_study(workers=6, permutations=200)


def test_export_analysis_writes_every_format_and_the_workbook_has_every_sheet(study, tmp_path):
    out = tmp_path / "export"
    stdout = io.StringIO()
    call_command("export_analysis", study="tiny", out=str(out), stdout=stdout, stderr=io.StringIO())
    names = {p.name for p in out.iterdir()}
    assert {"tasks.csv", "table1.csv", "table2.csv", "tests.csv", "responses.csv"} <= names
    assert {"analysis.xlsx", "analysis.json", "table1.tex", "table2.tex", "notes.txt"} <= names
    assert {"figure4.png", "figure4.svg", "figure5.png", "accuracy.svg"} <= names
    sheets = pd.read_excel(out / "analysis.xlsx", sheet_name=None)
    assert set(sheets) == SHEETS
    assert len(sheets["tasks"]) == 12
    assert "Analysed 12 tasks of tiny" in stdout.getvalue()


def test_exported_tasks_read_back_with_pseudonyms_only(study, tmp_path):
    analysis_export(study=study, out_dir=tmp_path / "e", formats=["csv"])
    tasks = read_tasks_csv(tmp_path / "e" / "tasks.csv", conditions={"no-xai": False, "sbsm": True})
    assert len(tasks) == 12
    assert tasks["worker"].str.startswith("w-").all()
    assert not tasks["worker"].str.contains("W").any()
    assert set(tasks["superclass"]) == {"CS", "UL"}
    assert not (tmp_path / "e" / "analysis.xlsx").exists()


def test_worker_ids_are_kept_only_when_asked(study, tmp_path):
    call_command(
        "export_analysis", study="tiny", out=str(tmp_path / "raw"), format=["csv"],
        keep_worker_ids=True, stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    workers = set(pd.read_csv(tmp_path / "raw" / "tasks.csv")["worker"])
    assert workers == {f"mturk:W{n}" for n in range(6)}


def test_the_analysis_uses_the_spec_settings_and_reproduces_with_its_seed(study):
    first = analysis_run(study=study, use_cache=False)
    second = analysis_run(study=study, use_cache=False)
    assert first.parameters["n_permutations"] == 200
    pd.testing.assert_frame_equal(first.tests, second.tests)
    assert set(first.cells.values()) == {"CS", "UL"}


def test_a_study_without_data_is_refused_and_nothing_is_written(db, tmp_path):
    build_study()
    with pytest.raises(CommandError, match="study tiny: no completed search task"):
        call_command("export_analysis", study="tiny", out=str(tmp_path / "none"))
    assert not (tmp_path / "none").exists()


def test_an_unknown_study_or_format_is_named(study, tmp_path):
    with pytest.raises(CommandError, match="no study with slug 'nope'"):
        call_command("export_analysis", study="nope", out=str(tmp_path / "x"))
    with pytest.raises(AnalysisError, match="unknown export format"):
        analysis_export(study=study, out_dir=tmp_path / "x", formats=["pdf"])
    assert not (tmp_path / "x").exists()


def test_downloads_are_a_workbook_or_a_zip_of_the_files(study):
    name, mime, content = analysis_download(study=study, fmt="xlsx")
    assert name == "tiny-analysis.xlsx"
    assert set(pd.read_excel(io.BytesIO(content), sheet_name=None)) == SHEETS
    name, mime, content = analysis_download(study=study, fmt="latex")
    assert mime == "application/zip"
    members = zipfile.ZipFile(io.BytesIO(content)).namelist()
    assert "tiny-latex/table2.tex" in members
    assert not any(m.endswith(".csv") for m in members)


def test_the_export_task_writes_the_chosen_formats(study, tmp_path):
    from analysis.tasks import analysis_export_study

    written = analysis_export_study.delay(study.pk, str(tmp_path / "task"), ["json"]).get()
    assert sorted(p.rsplit("/", 1)[1] for p in written) == ["analysis.json", "notes.txt"]
