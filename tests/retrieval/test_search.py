"""`retrieval.search`: exact top-k, one contract for every metric and backend, against brute force.

The features are multinomial counts over 256 divided by 256: rows sum to exactly 1 and every
sum in the search is exact in float32, so the brute force (float64, full sort) and the scan
must agree on the order exactly, ties included.
"""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.search import METRICS, distances, top_k, top_k_batch
from tests.conftest import BACKENDS


def quantised_features(n_rows: int, n_dims: int, seed: int) -> np.ndarray:
    """L1-normalised rows with exact float32 sums; some duplicated rows and a zero row."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(256, rng.dirichlet(np.ones(n_dims), size=n_rows))
    features = (counts / 256).astype(np.float32)
    # Exact ties, some of them across chunk boundaries (chunk_rows=7 below).
    copies = [row for row in (13, 20, 41) if row < n_rows]
    features[copies] = features[6]
    features[n_rows - 1] = features[0]
    features[min(30, n_rows - 2)] = 0  # a zero vector: cosine distance 1 by convention
    return features


def brute_force(features, query, k, metric, exclude=(), candidates=None):
    """Full float64 distances, full sort by (distance, row)."""
    x = features.astype(np.float64)
    q = np.asarray(query, dtype=np.float64)
    if metric == "hik":
        dist = 1 - np.minimum(x, q).sum(axis=1)
    elif metric == "l2":
        dist = np.sqrt(((x - q) ** 2).sum(axis=1))
    else:
        denominator = np.linalg.norm(x, axis=1) * np.linalg.norm(q)
        with np.errstate(invalid="ignore", divide="ignore"):
            dist = np.where(denominator > 0, 1 - (x @ q) / denominator, 1.0)
    rows = np.arange(len(x)) if candidates is None else np.unique(candidates)
    rows = rows[~np.isin(rows, list(exclude))]
    order = np.lexsort((rows, dist[rows]))
    chosen = rows[order][:k]
    return chosen, dist[chosen]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("chunk_rows", [7, None])
@pytest.mark.parametrize(
    ("k", "exclude", "candidates"),
    [
        (1, (), None),
        (10, (), None),
        (10, (6, 13, 0), None),
        (500, (), None),  # k larger than the archive
        (5, (), [41, 20, 13, 6, 3, 3, 77, 150]),  # conditional retrieval, duplicate candidate
        (50, (20, 77), [41, 20, 13, 6, 3, 77, 150]),  # k larger than the eligible candidates
    ],
)
def test_top_k_equals_brute_force(metric, backend, chunk_rows, k, exclude, candidates):
    features = quantised_features(160, 24, seed=3)
    for query in (features[6], features[99], features[0] * 0.5 + features[1] * 0.5):
        rows, dist = top_k(
            features,
            query,
            k,
            metric=metric,
            exclude=exclude,
            candidates=candidates,
            chunk_rows=chunk_rows,
            device=backend,
        )
        expected_rows, expected_dist = brute_force(features, query, k, metric, exclude, candidates)
        np.testing.assert_array_equal(rows, expected_rows)
        np.testing.assert_allclose(dist, expected_dist, rtol=0, atol=1e-6)
        assert rows.dtype == np.int64
        assert dist.dtype == np.float32


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_queries_match_one_query_at_a_time(metric, backend):
    features = quantised_features(120, 16, seed=5)
    queries = features[[3, 50, 6]]
    rows, dist = top_k_batch(features, queries, 9, metric=metric, exclude=[3], device=backend)
    assert rows.shape == dist.shape == (3, 9)
    for j, query in enumerate(queries):
        single_rows, single_dist = top_k(
            features, query, 9, metric=metric, exclude=[3], device=backend
        )
        np.testing.assert_array_equal(rows[j], single_rows)
        np.testing.assert_array_equal(dist[j], single_dist)


def test_hik_distance_is_half_the_l1_distance_for_l1_normalised_rows():
    rng = np.random.default_rng(0)
    features = rng.random((300, 64)).astype(np.float32)
    features /= features.sum(axis=1, keepdims=True)
    query = features[17]
    hik = distances(features, query, metric="hik")
    half_l1 = 0.5 * np.abs(features.astype(np.float64) - query).sum(axis=1)
    np.testing.assert_allclose(hik, half_l1, atol=1e-6)
    assert hik[17] == pytest.approx(0.0, abs=1e-6)


def test_equal_distances_go_to_the_lower_row():
    features = np.tile(np.full(4, 0.25, dtype=np.float32), (10, 1))
    rows, dist = top_k(features, features[0], 4, chunk_rows=3)
    np.testing.assert_array_equal(rows, [0, 1, 2, 3])
    assert set(dist.tolist()) == {0.0}


def test_a_read_only_memmap_is_searched_in_chunks_like_an_array(tmp_path):
    features = quantised_features(200, 32, seed=9)
    path = tmp_path / "features.npy"
    np.save(path, features)
    mapped = np.load(path, mmap_mode="r")
    assert not mapped.flags.writeable
    for backend in ("numpy", "cpu"):
        rows, dist = top_k(mapped, features[4], 25, chunk_rows=16, device=backend)
        expected_rows, expected_dist = top_k(features, features[4], 25, device=backend)
        np.testing.assert_array_equal(rows, expected_rows)
        np.testing.assert_array_equal(dist, expected_dist)


def test_float64_features_are_searched_in_float64():
    features = quantised_features(50, 8, seed=1).astype(np.float64)
    rows, dist = top_k(features, features[2], 3)
    assert dist.dtype == np.float64
    assert rows[0] == 2


def test_nothing_eligible_gives_empty_results():
    features = quantised_features(20, 8, seed=2)
    rows, dist = top_k(features, features[0], 5, candidates=[1, 2], exclude=[1, 2])
    assert rows.shape == dist.shape == (0,)


def test_distances_of_a_row_subset_follow_the_sorted_rows():
    features = quantised_features(40, 8, seed=4)
    subset = distances(features, features[1], metric="l2", rows=[9, 3, 3])
    full = distances(features, features[1], metric="l2")
    np.testing.assert_array_equal(subset, full[[3, 9]])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: top_k(f[0], f[0], 3), "features must be 2-D"),
        (lambda f: top_k(f, f[0][:-1], 3), r"shape \(n_queries, 8\)"),
        (lambda f: top_k(f, f[:2], 3), "query must be 1-D"),
        (lambda f: top_k(f, f[0], 3, metric="manhattan"), "unknown metric 'manhattan'"),
        (lambda f: top_k(f, f[0], 0), "k must be >= 1"),
        (lambda f: top_k(f, f[0], 2.5), "k must be an integer"),
        (
            lambda f: top_k(f, f[0], 3, exclude=[5, 20, -1]),
            r"exclude holds rows outside \[0, 20\): -1, 20",
        ),
        (
            lambda f: top_k(f, f[0], 3, candidates=[99]),
            r"candidates holds rows outside \[0, 20\): 99",
        ),
        (lambda f: top_k(f, f[0], 3, candidates=[0.5]), "integer row indices"),
        (lambda f: top_k(f, np.full(8, np.nan), 3), "queries must be finite"),
        (lambda f: top_k(f, f[0], 3, chunk_rows=0), "chunk_rows must be >= 1"),
        (lambda f: top_k_batch(f, f[0], 3), "queries must be 2-D"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, message):
    features = quantised_features(20, 8, seed=2)
    with pytest.raises(ValueError, match=message):
        call(features)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_nan_features_are_named_not_ranked(backend):
    features = quantised_features(20, 8, seed=2)
    features[[4, 11], 3] = np.nan
    with pytest.raises(ValueError, match=r"non-finite values .* rows 4, 11"):
        top_k(features, features[0], 3, device=backend)
