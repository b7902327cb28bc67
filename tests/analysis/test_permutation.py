"""Stratified permutation tests (seed 001 section 4): against a loop, scipy, and bad input."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.frame import AnalysisError
from analysis.permutation import permutation_test, permutation_tests
from analysis.stratified import key_blocks, null_with_sums, padded_layout
from analysis.synthetic import synthetic_tasks


def loop_null(values, is_xai, strata, n_permutations, seed):
    """One permutation at a time, in plain Python, reading the same keys."""
    rng = np.random.default_rng(seed)
    codes, _ = pd.factorize(pd.Series(strata))
    n_strata = codes.max() + 1
    slot = padded_layout(codes, n_strata)
    rows = (np.bincount(codes).max()) * n_strata
    total, n_with, n_without = values.sum(), is_xai.sum(), (~is_xai).sum()
    k = Counter(codes[is_xai].tolist())
    gains = []
    for _, keys in key_blocks(rng, rows, n_permutations):
        for column in range(keys.shape[1]):
            need, left, with_sum = dict(k), Counter(codes.tolist()), 0.0
            for i in range(len(values)):  # data order: each class's points in order
                s = codes[i]
                if int(keys[slot[i], column]) * left[s] < need.get(s, 0) * 2**32:
                    with_sum += values[i]
                    need[s] -= 1
                left[s] -= 1
            gains.append((with_sum / n_with) / ((total - with_sum) / n_without) - 1)
    return np.array(gains)


def test_the_padded_layout_puts_the_t_th_point_of_class_s_in_slot_t_times_classes_plus_s():
    codes = np.array([1, 0, 1, 1, 0])

    assert padded_layout(codes, 2).tolist() == [1, 0, 3, 5, 2]


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    strata = rng.choice(["apple", "book", "cake", "fork", "oven"], size=60)
    is_xai = rng.random(60) < 0.5
    values = rng.poisson(15, 60) + 2.0 * is_xai
    return values.astype(float), is_xai, strata


def test_the_vectorised_null_distribution_equals_a_loop_over_permutations(data):
    values, is_xai, strata = data

    result = permutation_test(values, is_xai, strata, n_permutations=300, random_state=11)

    expected = loop_null(values, is_xai, strata, 300, seed=11)
    np.testing.assert_allclose(result.null_distribution, expected, rtol=1e-12)
    k = np.count_nonzero(expected >= result.statistic * (1 - 1e-12))
    assert result.pvalue == (k + 1) / 301


def test_the_loop_agreement_holds_across_blocks_of_permutations(data, monkeypatch):
    import analysis.stratified as module

    monkeypatch.setattr(module, "_BLOCK_KEYS", 100)  # blocks of a few permutations
    values, is_xai, strata = data

    result = permutation_test(values, is_xai, strata, n_permutations=30, random_state=2)

    np.testing.assert_allclose(result.null_distribution, loop_null(values, is_xai, strata, 30, 2))


def test_every_class_keeps_its_number_of_with_xai_points_in_every_permutation(data):
    _, is_xai, strata = data
    codes, classes = pd.factorize(pd.Series(strata))
    ones = np.ones((len(codes), 1))

    sums = null_with_sums(ones, is_xai, codes, len(classes), 500, np.random.default_rng(0))

    observed = np.bincount(codes, weights=is_xai, minlength=len(classes))
    assert (sums[:, :, 0] == observed).all()


def test_every_subset_of_a_class_is_equally_likely():
    # 4 points, 2 with-XAI: values 1, 2, 4, 8 make each of the 6 subsets a distinct sum
    values = np.array([[1.0], [2.0], [4.0], [8.0]])
    is_xai = np.array([True, True, False, False])
    sums = null_with_sums(values, is_xai, np.zeros(4, int), 1, 12_000, np.random.default_rng(5))

    counts = Counter(sums[:, 0, 0].tolist())
    assert sorted(counts) == [3.0, 5.0, 6.0, 9.0, 10.0, 12.0]
    assert stats.chisquare(list(counts.values())).pvalue > 0.001


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_with_a_single_stratum_the_p_value_agrees_with_scipys_exact_test(alternative):
    rng = np.random.default_rng(3)
    with_values, without_values = rng.poisson(12, 6) + 2.0, rng.poisson(12, 6).astype(float)

    def gain(x, y, axis):
        return np.mean(x, axis=axis) / np.mean(y, axis=axis) - 1

    # 12 choose 6 = 924 relabellings < n_resamples: scipy enumerates them all (exact p)
    exact = stats.permutation_test(
        (with_values, without_values), gain, permutation_type="independent",
        alternative=alternative, n_resamples=100_000, vectorized=True,
    )  # fmt: skip
    ours = permutation_test(
        np.r_[with_values, without_values], np.r_[np.ones(6, bool), np.zeros(6, bool)],
        np.zeros(12), n_permutations=20_000, alternative=alternative, random_state=0,
    )  # fmt: skip

    assert ours.statistic == pytest.approx(exact.statistic)
    # 4 standard errors of a 20,000-permutation estimate
    assert ours.pvalue == pytest.approx(exact.pvalue, abs=4 * np.sqrt(0.25 / 20_000) * 2)


def test_p_values_use_the_plus_one_correction_and_never_reach_zero():
    values = np.r_[np.full(10, 30.0), np.full(10, 10.0)]
    is_xai = np.r_[np.ones(10, bool), np.zeros(10, bool)]

    result = permutation_test(values, is_xai, np.zeros(20), n_permutations=99, random_state=1)

    assert result.pvalue == pytest.approx(1 / 100)
    less = permutation_test(values, is_xai, np.zeros(20), n_permutations=99, alternative="less")
    assert less.pvalue == pytest.approx(1.0)


def test_the_same_seed_gives_the_same_p_value(data):
    values, is_xai, strata = data
    first = permutation_test(values, is_xai, strata, n_permutations=200, random_state=4)
    second = permutation_test(values, is_xai, strata, n_permutations=200, random_state=4)

    np.testing.assert_array_equal(first.null_distribution, second.null_distribution)


def test_too_few_data_points_give_a_clear_message():
    with pytest.raises(AnalysisError, match=r"too few data points .*with-XAI 1, no-XAI 3"):
        permutation_test([1.0, 2, 3, 4], [True, False, False, False], ["a"] * 4)


def test_classes_never_holding_both_conditions_give_a_clear_message():
    with pytest.raises(AnalysisError, match="no query class has data points in both conditions"):
        permutation_test([1.0, 2, 3, 4], [True, True, False, False], ["a", "a", "b", "b"])


def test_a_zero_no_xai_mean_gives_a_clear_message():
    with pytest.raises(AnalysisError, match=r"gain is undefined \(no-XAI mean is 0\)"):
        permutation_test([1.0, 2, 0, 0], [True, True, False, False], ["a"] * 4)


def test_every_attribute_and_group_is_tested_and_an_empty_group_is_reported_not_raised():
    tasks = synthetic_tasks(200, gain=0.3, random_state=0)
    cells = dict(zip(tasks["query_class"], tasks["superclass"], strict=False))
    no_small = tasks[~tasks["superclass"].isin(["CS", "US"])]

    results, notes = permutation_tests(
        no_small, cells, n_permutations=500, random_state=0, groups=["Cluttered", "Small"]
    )

    assert len(results) == 6
    cluttered = results[results["group"] == "Cluttered"].set_index("attribute")
    assert cluttered["p_value"].between(0, 1).all()
    assert (cluttered["note"] == "").all()
    assert cluttered.loc["nP", "p_value"] < 0.1  # a 30 % gain in cluttered classes is found
    small = results[results["group"] == "Small"]
    assert small["p_value"].isna().all()
    assert small["note"].str.contains("too few data points").all()
    assert len(notes) == 3


def test_the_table_tests_equal_the_single_test_on_the_groups_data():
    tasks = synthetic_tasks(80, random_state=5)
    cells = dict(zip(tasks["query_class"], tasks["superclass"], strict=False))

    results, _ = permutation_tests(tasks, cells, attributes=["nP"], groups=["Cluttered"],
                                   n_permutations=400, random_state=9)  # fmt: skip

    group = tasks[tasks["superclass"].isin(["CL", "CS"])]
    single = permutation_test(group["nP"], group["is_xai"], group["query_class"],
                              n_permutations=400, random_state=9)  # fmt: skip
    assert results.loc[0, "gain"] == pytest.approx(single.statistic)
    # different data, different keys: only the distribution must agree
    assert results.loc[0, "p_value"] == pytest.approx(single.pvalue, abs=0.1)


def test_a_table_without_any_tested_class_reports_every_test_instead_of_crashing():
    tasks = synthetic_tasks(40, random_state=2)
    cells = dict(zip(tasks["query_class"], tasks["superclass"], strict=False))
    uncluttered = tasks[tasks["superclass"].isin(["UL", "US"])]

    results, notes = permutation_tests(uncluttered, cells, groups=["Cluttered"], n_permutations=50)

    assert results["p_value"].isna().all()
    assert notes == [f"{a}, group Cluttered: too few data points for a permutation test "
                     "(with-XAI 0, no-XAI 0; need at least 2 each)" for a in ("nP", "nA", "T")]  # fmt: skip
