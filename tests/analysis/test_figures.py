"""Figures: files are written, and what is drawn is the data given."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.figures import BUBBLE_DIAMETER, figure4, figure5, figure_accuracy, save_figure
from analysis.frame import AnalysisError


def test_figure4_plots_ratio_against_clutter_sized_by_object_size(tmp_path):
    per_class = pd.DataFrame(
        {"ratio": [1.2, 0.9, np.nan], "clutter": [5.0, 2.5, 3.0], "size": [0.04, 0.4, 0.1]},
        index=["spoon", "cake", "oven"],
    )

    figure = figure4(per_class)
    paths = save_figure(figure, tmp_path / "figure4")

    axes = figure.axes[0]
    scatter = axes.collections[0]
    np.testing.assert_allclose(scatter.get_offsets(), [[1.2, 5.0], [0.9, 2.5]])  # NaN left out
    # diameter proportional to size (seed 001's caption): spoon's a tenth of cake's
    diameters = np.sqrt(scatter.get_sizes())
    np.testing.assert_allclose(diameters, [BUBBLE_DIAMETER * 0.1, BUBBLE_DIAMETER])
    assert [line.get_xdata()[0] for line in axes.lines] == [1.0]
    assert [text.get_text() for text in axes.texts] == ["spoon", "cake"]
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].stat().st_size > 1000


def test_figure5_bars_are_the_mean_normalised_answers_with_and_without_xai(tmp_path):
    responses = pd.DataFrame(
        {
            "question": "prefer_with_xai",
            "value": [6, 4, 1, 3, 2, 5],
            "is_xai": [True, True, False, True, False, True],
            "query_class": ["book", "book", "book", "cake", "cake", "fork"],
        }
    )

    figure = figure5(responses)
    save_figure(figure, tmp_path / "figure5")

    axes = figure.axes[0]
    with_bars, without_bars = axes.containers
    assert [t.get_text() for t in axes.get_xticklabels()] == ["book", "cake", "fork"]
    assert [b.get_height() for b in with_bars] == pytest.approx([0.8, 0.4, 0.8])
    heights = [b.get_height() for b in without_bars]
    assert heights[:2] == pytest.approx([0.0, 0.2])
    assert np.isnan(heights[2])  # no no-XAI answer for fork: no bar, not a zero
    assert (tmp_path / "figure5.svg").stat().st_size > 1000


def test_figure5_needs_a_choice_among_several_questions():
    responses = pd.DataFrame({"question": ["a", "b"], "value": [1, 2], "is_xai": [True, False]})

    with pytest.raises(AnalysisError, match="choose one question"):
        figure5(responses)


def test_accuracy_figure_has_one_line_per_condition_with_the_round_means(tmp_path):
    tasks = pd.DataFrame(
        {
            "condition": ["sbsm", "sbsm", "no-xai"],
            "acc_round_0": [0.2, 0.4, 0.3],
            "acc_round_1": [0.5, np.nan, 0.6],
        }
    )

    figure = figure_accuracy(tasks)
    save_figure(figure, tmp_path / "accuracy")

    lines = {line.get_label(): line for line in figure.axes[0].lines}
    np.testing.assert_allclose(lines["sbsm"].get_ydata(), [0.3, 0.5])
    np.testing.assert_allclose(lines["no-xai"].get_ydata(), [0.3, 0.6])
    np.testing.assert_array_equal(lines["sbsm"].get_xdata(), [0, 1])
    assert (tmp_path / "accuracy.png").stat().st_size > 1000


def test_accuracy_figure_without_accuracy_columns_says_so():
    with pytest.raises(AnalysisError, match="no acc_round_<r> columns"):
        figure_accuracy(pd.DataFrame({"condition": ["a"]}))
