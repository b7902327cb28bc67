"""Tables 1 and 2 of seed 001: its own Table 1 numbers, and Table 2 by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.frame import AnalysisError
from analysis.tables import class_ratios, table1, table1_from_counts, table2

PAPER_WITH = {"CL": 111, "CS": 141, "UL": 101, "US": 123}
PAPER_WITHOUT = {"CL": 138, "CS": 150, "UL": 89, "US": 99}


def test_table1_reproduces_the_papers_qd_and_ratio_rows_to_two_decimals():
    frame = table1_from_counts(PAPER_WITH, PAPER_WITHOUT).frame.round(2)

    assert frame.loc[("qD", "C"), "with-XAI"].tolist() == [0.23, 0.30]
    assert frame.loc[("qD", "U"), "with-XAI"].tolist() == [0.21, 0.26]
    assert frame.loc[("qD", "C"), "no-XAI"].tolist() == [0.29, 0.32]
    assert frame.loc[("qD", "U"), "no-XAI"].tolist() == [0.19, 0.21]
    assert frame.loc[("ratio", "C"), "with-XAI"].tolist() == [0.80, 0.94]
    assert frame.loc[("ratio", "U"), "with-XAI"].tolist() == [1.13, 1.24]
    assert frame.loc[("qD-raw", "C"), "no-XAI"].tolist() == [138, 150]


def test_table1_ratio_is_a_ratio_of_fractions_not_of_raw_counts():
    # 10 with-XAI tasks in CL out of 20, 10 no-XAI tasks in CL out of 40: same count,
    # twice the share
    result = table1_from_counts({"CL": 10, "US": 10}, {"CL": 10, "US": 30})

    ratio = result.long.query("attribute == 'ratio'").set_index("cell")["value"]
    assert ratio["CL"] == pytest.approx(2.0)
    assert ratio["US"] == pytest.approx((10 / 20) / (30 / 40))


def test_an_empty_no_xai_cell_leaves_its_ratio_empty_and_says_so():
    result = table1_from_counts(PAPER_WITH, {**PAPER_WITHOUT, "UL": 0})

    assert np.isnan(result.frame.loc[("ratio", "U"), ("with-XAI", "size(L)")])
    assert result.notes == ["Table 1: ratio of cell UL is undefined (no no-XAI data points)"]


CELLS = {"a": "CL", "b": "CS", "c": "UL", "d": "US"}


@pytest.fixture
def small() -> pd.DataFrame:
    rows = [  # (class, is_xai, nP)
        ("a", True, 10), ("a", True, 12), ("b", True, 6), ("c", True, 8), ("d", True, 4),
        ("d", True, 6), ("a", False, 10), ("b", False, 5), ("b", False, 7), ("c", False, 8),
        ("c", False, 8), ("d", False, 5),
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["query_class", "is_xai", "nP"])
    frame["nA"] = 2 * frame["nP"]
    frame["T"] = np.where(frame["is_xai"], 120.0, 100.0)
    frame["condition"] = np.where(frame["is_xai"], "sbsm", "no-xai")
    return frame


def test_table2_ratios_and_gains_equal_a_hand_computation(small):
    result = table2(small, CELLS)
    frame = result.frame

    # Table 1 ratios: CL (2/6)/(1/6) = 2, CS 0.5, UL 0.5, US 2
    # nP, CL: (22 / 10) / 2 = 1.1; CS: (6 / 12) / 0.5 = 1; UL: (8 / 16) / 0.5 = 1; US: (10 / 5) / 2 = 1
    assert frame.loc[("nP", "C"), "ratio XAI/no-XAI"].tolist() == pytest.approx([1.1, 1.0])
    assert frame.loc[("nP", "U"), "ratio XAI/no-XAI"].tolist() == pytest.approx([1.0, 1.0])
    # gains: Cluttered (a, b) 28/3 vs 22/3 per task; Small (b, d) 16/3 vs 17/3
    gains = frame.loc[("nP", "C"), "XAI gain for"]
    assert gains.tolist() == pytest.approx([28 / 22 - 1, 16 / 17 - 1])
    assert frame.loc[("nA", "C"), "ratio XAI/no-XAI"].tolist() == pytest.approx([1.1, 1.0])
    # T is 120 s with and 100 s without everywhere: 1.2 in every cell, +20 % in every group
    assert frame.loc["T", "ratio XAI/no-XAI"].to_numpy().ravel() == pytest.approx([1.2] * 4)
    assert frame.loc[("T", "C"), "XAI gain for"].tolist() == pytest.approx([0.2, 0.2])
    assert np.isnan(frame.loc[("nP", "U"), "XAI gain for"]).all()  # printed on C rows only
    assert result.notes == []


def test_table2_names_a_cell_whose_ratio_has_a_zero_denominator(small):
    small.loc[(small["query_class"] == "d") & ~small["is_xai"], "nP"] = 0

    result = table2(small, CELLS, attributes=["nP"])

    assert np.isnan(result.frame.loc[("nP", "U"), ("ratio XAI/no-XAI", "size(S)")])
    assert any("nP ratio of cell US is undefined" in note for note in result.notes)
    assert result.frame.loc[("nP", "C"), ("ratio XAI/no-XAI", "size(L)")] == pytest.approx(1.1)


def test_table2_names_an_empty_group(small):
    no_small = small[~small["query_class"].isin(["b", "d"])]

    result = table2(no_small, CELLS, attributes=["nP"])

    assert any("gain of group Small is undefined (with-XAI n=0" in n for n in result.notes)


def test_table1_of_a_task_table_counts_tasks_per_cell_and_condition(small):
    long = table1(small, CELLS).long.query("attribute == 'qD-raw'")

    counts = long.set_index(["condition", "cell"])["value"]
    assert counts[("with-XAI", "CL")] == 2
    assert counts[("no-XAI", "UL")] == 2


def test_class_ratios_divide_mean_positives_with_by_without(small):
    ratios = class_ratios(small).frame

    assert ratios.loc["a", "ratio"] == pytest.approx(11 / 10)
    assert ratios.loc["b", "ratio"] == pytest.approx(6 / 6)
    assert ratios.loc["d", ["n_with", "n_without"]].tolist() == [2, 1]


def test_order_effects_give_np_na_and_t_by_position_and_condition():
    from analysis.tables import order_effects

    tasks = pd.DataFrame(
        {
            "position": [1, 2, 1, 2, 1],
            "condition": ["sbsm", "no-xai", "no-xai", "sbsm", "sbsm"],
            "nP": [12, 10, 9, 15, 14],
            "nA": [30, 25, 20, 40, 32],
            "T": [400.0, 300.0, 350.0, 500.0, 420.0],
        }
    )

    table = order_effects(tasks).set_index(["position", "condition"])

    assert list(table.index) == [(1, "no-xai"), (1, "sbsm"), (2, "no-xai"), (2, "sbsm")]
    assert table.loc[(1, "sbsm"), "tasks"] == 2
    assert table.loc[(1, "sbsm"), "nP_mean"] == 13.0
    assert table.loc[(1, "sbsm"), "nA_sd"] == pytest.approx(np.std([30, 32], ddof=1))
    assert table.loc[(2, "sbsm"), "T_mean"] == 500.0
    assert np.isnan(table.loc[(2, "sbsm"), "T_sd"])  # one task: no spread
    with pytest.raises(AnalysisError, match="position"):
        order_effects(tasks.drop(columns="position"))
