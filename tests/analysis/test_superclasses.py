"""Superclass cells of the query classes (seed 001 section 5.1)."""

from __future__ import annotations

import pytest

from analysis.frame import AnalysisError
from analysis.superclasses import PAPER_SUPERCLASSES, assign_superclasses, cells_of_tasks
from analysis.synthetic import synthetic_tasks


def test_top_half_by_clutter_is_cluttered_and_top_half_by_size_is_large():
    clutter = {"a": 5.0, "b": 4.0, "c": 2.0, "d": 1.5, "unused": 9.0}
    size = {"a": 0.3, "b": 0.01, "c": 0.2, "d": 0.02, "unused": 0.9}

    cells = assign_superclasses(["a", "b", "c", "d"], clutter=clutter, size=size)

    # the halves are taken over the query classes only: "unused" does not push "b" down
    assert cells == {"a": "CL", "b": "CS", "c": "UL", "d": "US"}


def test_the_paper_lists_override_the_statistics():
    classes = [name for names in PAPER_SUPERCLASSES.values() for name in names]
    cells = assign_superclasses(classes, override=PAPER_SUPERCLASSES)

    assert cells["dining_table"] == "CL"
    assert cells["spoon"] == "CS"
    assert cells["umbrella"] == "UL"
    assert cells["orange"] == "US"
    assert sorted(cells.values()).count("CS") == 6


def test_the_study_spec_form_of_the_override_is_accepted():
    cells = assign_superclasses(["a", "b", "c"], override={"cluttered": ["a"], "large": ["a", "c"]})

    assert cells == {"a": "CL", "b": "US", "c": "UL"}


def test_a_class_missing_from_the_lists_is_named():
    with pytest.raises(AnalysisError, match=r"do not place query class\(es\) \['z'\]"):
        assign_superclasses(["a", "z"], override={"CL": ["a"]})


def test_a_class_without_statistics_is_named():
    with pytest.raises(
        AnalysisError, match=r"no clutter/size statistics for query class\(es\) \['b'\]"
    ):
        assign_superclasses(["a", "b"], clutter={"a": 1.0}, size={"a": 0.1, "b": 0.2})


def test_cells_of_a_task_table_come_from_its_clutter_and_size_columns():
    tasks = synthetic_tasks(60, random_state=1).drop(columns=["superclass"])

    cells = cells_of_tasks(tasks)

    expected = {name: cell for cell, names in PAPER_SUPERCLASSES.items() for name in names}
    assert cells == {name: expected[name] for name in cells}
