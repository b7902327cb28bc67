"""Likert summaries (seed 001 section 5.3, Figure 5; seed 000's 5-point scale)."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.frame import AnalysisError
from analysis.likert import likert_summary, normalise


def answers(values, *, question="prefer_with_xai", condition="sbsm", points=6):
    return pd.DataFrame(
        {"question": question, "condition": condition, "value": values, "points": points}
    )


def test_a_six_point_summary_counts_agreement_as_the_paper_does():
    data = answers([1, 2, 3, 4, 4, 5, 6, 6, 6, 3])

    row = likert_summary(data).iloc[0]

    assert (row["n"], row["mean"], row["median"]) == (10, 4.0, 4.0)
    assert [row[f"count_{v}"] for v in range(1, 7)] == [1, 1, 2, 2, 1, 3]
    assert row["agreed_some"] == pytest.approx(0.6)  # 4, 5 or 6
    assert row["agreed_strong"] == pytest.approx(0.4)  # 5 or 6
    assert row["mean_normalised"] == pytest.approx(0.6)  # (4 - 1) / 5


def test_on_five_points_neutral_is_not_agreement():
    row = likert_summary(answers([3, 3, 4, 5], points=5)).iloc[0]

    assert row["agreed_some"] == pytest.approx(0.5)
    assert row["agreed_strong"] == pytest.approx(0.5)
    assert row["count_6"] == 0


def test_answers_are_summarised_per_question_and_condition():
    data = pd.concat(
        [answers([6, 6]), answers([1, 2], condition="no-xai"), answers([4], question="q2")]
    )

    summary = likert_summary(data).set_index(["question", "condition"])

    assert summary.loc[("prefer_with_xai", "sbsm"), "mean"] == 6.0
    assert summary.loc[("prefer_with_xai", "no-xai"), "mean"] == 1.5
    assert summary.loc[("q2", "sbsm"), "n"] == 1


def test_figure5_normalisation_maps_six_points_onto_fifths():
    assert normalise([1, 2, 3, 4, 5, 6], 6).tolist() == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (answers([1, 7]), r"line 3: 7 is outside 1..6"),
        (answers([1, "x"]), r"'value', line 3: 'x' is not an integer"),
        (answers([1, 2], points=7), "only 5- and 6-point"),
        (pd.DataFrame({"question": ["q"]}), r"missing column\(s\): value"),
    ],
)
def test_invalid_answers_are_refused_with_the_line_named(data, message):
    with pytest.raises(AnalysisError, match=message):
        likert_summary(data)


def test_a_question_asked_on_two_scales_is_refused():
    data = pd.concat([answers([1, 2]), answers([3], points=5, condition="no-xai")])

    with pytest.raises(AnalysisError, match="several scales"):
        likert_summary(data)
