"""Bucket codes and bounded scoring: the bounds hold, and the top-k is exactly the full ranking's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from retrieval import hik_svm as hik_module
from retrieval.hik_codes import HikCodes, bounded_top_k, decision_bounds
from retrieval.hik_svm import HikSvmReranker
from retrieval.iqr import IqrSession
from tests.retrieval.test_hik_svm import clustered, l1_rows, synthetic_features  # noqa: F401

pytestmark = pytest.mark.skipif(
    hik_module._compiled_kernel() is None, reason="HIK codes need numba"
)


def fitted(rng, features, n_pos=11, n_neg=10):
    rows = rng.choice(features.shape[0], n_pos + n_neg, replace=False)
    y = np.r_[np.ones(n_pos, np.int64), np.zeros(n_neg, np.int64)]
    return HikSvmReranker().fit(features[rows], y), rows


def full_ranking_top(model, features, k, exclude=()):
    values = model.decision_function(features)
    rows = np.setdiff1d(np.arange(features.shape[0]), np.asarray(exclude, dtype=np.int64))
    order = np.lexsort((rows, -values[rows]))[:k]
    return rows[order], values[rows[order]]


# ----------------------------------------------------------------------------- the index


def test_every_value_lies_in_its_bucket():
    rng = np.random.default_rng(0)
    features = l1_rows(rng, 3000, 40)
    features[:, :5] = 0.0  # sparse dimensions
    codes = HikCodes.build(features, sample_rows=500)
    lower = np.take_along_axis(codes.edges, codes.codes.astype(np.int64), axis=1).T
    upper = np.take_along_axis(codes.edges, codes.codes.astype(np.int64) + 1, axis=1).T
    assert np.all(lower <= features)
    assert np.all(features <= upper)
    assert np.all(np.diff(codes.edges, axis=1) >= 0)
    np.testing.assert_array_equal(codes.edges[:, 0], features.min(axis=0))
    np.testing.assert_array_equal(codes.edges[:, -1], features.max(axis=0))
    # An all-zero dimension: every value in the degenerate bucket [0, 0].
    assert not codes.codes[:5].any()
    assert codes.codes[5:].max() == 255
    assert codes.codes[5:].min() == 0


def test_codes_take_a_quarter_of_the_float32_bytes():
    features = l1_rows(np.random.default_rng(1), 500, 64)
    codes = HikCodes.build(features)
    assert codes.codes.dtype == np.uint8
    assert codes.codes.shape == (64, 500)
    assert codes.codes.nbytes * 4 == features.nbytes


def test_codes_save_and_load_as_a_memmap(tmp_path):
    features = l1_rows(np.random.default_rng(2), 700, 16)
    built = HikCodes.build(features)
    built.save(tmp_path / "codes")
    loaded = HikCodes.load(tmp_path / "codes")
    assert isinstance(loaded.codes, np.memmap)
    np.testing.assert_array_equal(loaded.codes, built.codes)
    np.testing.assert_array_equal(loaded.edges, built.edges)
    assert sorted(p.name for p in (tmp_path / "codes").iterdir()) == ["codes.npy", "edges.npy"]


def test_a_missing_codes_file_is_named(tmp_path):
    HikCodes.build(l1_rows(np.random.default_rng(3), 50, 4)).save(tmp_path)
    (tmp_path / "edges.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"edges\.npy"):
        HikCodes.load(tmp_path)


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (np.ones(5, np.float32), "2-D"),
        (np.ones((4, 3), np.int64), "float32 or float64"),
        (np.array([[0.5, 0.5], [np.nan, 1.0], [0.1, np.inf]], np.float32), "rows 1, 2"),
    ],
)
def test_bad_features_are_refused_with_the_reason(features, message):
    with pytest.raises(ValueError, match=message):
        HikCodes.build(features)


@pytest.mark.parametrize("buckets", [1, 257, 2.5, True])
def test_bucket_counts_outside_2_to_256_are_refused(buckets):
    with pytest.raises(ValueError, match="buckets"):
        HikCodes.build(np.ones((3, 2), np.float32), buckets=buckets)


def test_codes_of_other_features_are_refused_before_use():
    rng = np.random.default_rng(4)
    features = l1_rows(rng, 400, 24)
    other = l1_rows(rng, 400, 24)
    model, _ = fitted(rng, features)
    codes = HikCodes.build(other)
    with pytest.raises(ValueError, match="do not match these features"):
        bounded_top_k(model, features, codes, 10)
    with pytest.raises(ValueError, match=r"shape \(400, 24\)"):
        bounded_top_k(model, features[:300], HikCodes.build(features), 10)


# ----------------------------------------------------------------------------- the bounds


@pytest.mark.parametrize("data", ["random", "clustered", "sparse"])
def test_the_bounds_hold_for_every_row(data):
    rng = np.random.default_rng(5)
    if data == "clustered":
        features, _ = clustered(rng, 2000, 64)
    else:
        features = l1_rows(rng, 2000, 64)
        if data == "sparse":
            features[rng.random(features.shape) < 0.6] = 0.0
            features /= np.maximum(features.sum(axis=1, keepdims=True), 1e-12)
    model, _ = fitted(rng, features)
    centre, radius = decision_bounds(model, HikCodes.build(features, sample_rows=300))
    exact = model.decision_function(features)
    assert np.all(np.abs(exact - centre) <= radius)
    # The bounds are informative: much narrower than the spread of the decision values.
    assert np.median(radius) < 0.25 * np.std(exact)


def test_the_bounds_hold_with_two_buckets_and_two_repeated_rows():
    # Each dimension holds two values only, so the buckets are as coarse as they get.
    rng = np.random.default_rng(6)
    features = np.tile(l1_rows(rng, 1, 10), (50, 1))
    features[25:] = l1_rows(rng, 1, 10)
    model = HikSvmReranker().fit(features[[0, 30]], np.array([1, 0]))
    centre, radius = decision_bounds(model, HikCodes.build(features, buckets=2))
    exact = model.decision_function(features)
    assert np.all(np.abs(exact - centre) <= radius)


# ----------------------------------------------------------------------------- the top k


@pytest.mark.parametrize("k", [1, 10, 50])
@pytest.mark.parametrize("data", ["random", "clustered"])
def test_the_bounded_top_k_is_the_full_rankings_top_k(k, data):
    rng = np.random.default_rng(7)
    features = l1_rows(rng, 5000, 128) if data == "random" else clustered(rng, 5000, 128)[0]
    model, train = fitted(rng, features)
    codes = HikCodes.build(features)
    top = model.top_k(features, k, codes=codes, exclude=train)
    rows, values = full_ranking_top(model, features, k, exclude=train)
    np.testing.assert_array_equal(top.rows, rows)
    np.testing.assert_array_equal(top.values, values)
    assert not np.isin(top.rows, train).any()
    # Only a small share of the archive is scored exactly.
    assert top.scored < 0.1 * features.shape[0]


@st.composite
def archives(draw):
    """Small archives with zeros, repeated values, duplicated rows and ties."""
    n_rows = draw(st.integers(3, 60))
    n_dims = draw(st.integers(1, 8))
    values = st.sampled_from([0.0, 0.0, 0.125, 0.25, 0.5]) | st.floats(
        0, 1, width=32, allow_subnormal=False
    )
    features = draw(arrays(np.float32, (n_rows, n_dims), elements=values))
    if draw(st.booleans()):
        features[-1] = features[0]
    train = draw(st.lists(st.integers(0, n_rows - 1), min_size=2, max_size=8, unique=True))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=len(train), max_size=len(train))))
    y[:2] = [1, 0]
    k = draw(st.integers(1, n_rows + 2))
    exclude = draw(st.lists(st.integers(0, n_rows - 1), max_size=5))
    buckets = draw(st.sampled_from([2, 3, 16, 256]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return features.astype(dtype), np.array(train), y, k, exclude, buckets


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=archives())
def test_the_bounded_top_k_equals_the_exact_one_on_any_small_archive(problem):
    features, train, y, k, exclude, buckets = problem
    model = HikSvmReranker().fit(features[train], y)
    codes = HikCodes.build(features, buckets=buckets, sample_rows=7)
    centre, radius = decision_bounds(model, codes)
    assert np.all(np.abs(model.decision_function(features) - centre) <= radius)
    top = bounded_top_k(model, features, codes, k, exclude=exclude)
    rows, values = full_ranking_top(model, features, k, exclude=exclude)
    np.testing.assert_array_equal(top.rows, rows)
    np.testing.assert_array_equal(top.values, values)


def test_top_k_on_the_synthetic_archive_with_the_fixture_backbone(synthetic_features):  # noqa: F811
    features, targets = synthetic_features
    target_class = int(np.argmax(targets.sum(axis=0)))
    holding = np.flatnonzero(targets[:, target_class])
    missing = np.flatnonzero(~targets[:, target_class].astype(bool))
    train = np.r_[holding[:6], missing[:6]]
    y = np.r_[np.ones(6, np.int64), np.zeros(6, np.int64)]
    model = HikSvmReranker().fit(features[train], y)
    top = model.top_k(features, 20, codes=HikCodes.build(features), exclude=train)
    rows, values = full_ranking_top(model, features, 20, exclude=train)
    np.testing.assert_array_equal(top.rows, rows)
    np.testing.assert_array_equal(top.values, values)


@pytest.mark.parametrize("k", [0, -1, 2.0, True])
def test_bad_k_is_refused(k):
    rng = np.random.default_rng(8)
    features = l1_rows(rng, 50, 4)
    model, _ = fitted(rng, features, 3, 3)
    with pytest.raises(ValueError, match="k must be"):
        model.top_k(features, k, codes=HikCodes.build(features))
    with pytest.raises(ValueError, match="k must be"):
        model.top_k(features, k)


def test_excluded_rows_out_of_range_are_named():
    rng = np.random.default_rng(9)
    features = l1_rows(rng, 50, 4)
    model, _ = fitted(rng, features, 3, 3)
    with pytest.raises(ValueError, match="50"):
        model.top_k(features, 5, codes=HikCodes.build(features), exclude=[50])


# ----------------------------------------------------------------------------- IQR


@pytest.mark.parametrize("working_set", ["all", "neighbours"])
def test_an_iqr_refine_with_a_limit_is_the_head_of_the_full_ranking(working_set):
    rng = np.random.default_rng(10)
    features, _ = clustered(rng, 3000, 96)
    codes = HikCodes.build(features)
    marks = rng.choice(np.arange(1, 3000), 12, replace=False)

    def session(with_codes):
        s = IqrSession(
            features,
            0,
            working_set=working_set,
            neighbours_per_positive=200,
            codes=codes if with_codes else None,
        )
        s.adjudicate(positives=marks[:6], negatives=marks[6:])
        return s

    full = session(False).refine()
    head = session(True).refine(limit=25)
    np.testing.assert_array_equal(head, full[:25])
    state = session(True).to_state()
    restored = IqrSession.from_state(state, features, codes=codes)
    np.testing.assert_array_equal(restored.refine(limit=25), full[:25])
    with pytest.raises(ValueError, match="limit"):
        session(True).refine(limit=0)
