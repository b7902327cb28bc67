"""Interpret-and-censor scores (seed 003): hand examples, shapes, determinism, errors."""

import numpy as np
import pytest
import torch

from explain.faithfulness import censor_scores, random_censor_baseline
from tests.explain.nets import mean_colour, tiny_cnn


def patch_pair() -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """A red query and a 10x10 result at the mean colour but for a red patch in its top 2 rows.

    The patch is 20 of the 100 pixels: exactly the 20% that censoring removes. Returns the
    query, the results (one) and the map that marks the patch.
    """
    query = torch.zeros(3, 10, 10)
    query[0] = 1.0
    result = torch.zeros(1, 3, 10, 10)
    result[0, 0, :2, :] = 1.0
    patch_map = np.zeros((1, 10, 10))
    patch_map[0, :2, :] = 1.0
    return query, result, patch_map


def test_censoring_the_patch_that_makes_the_match_drops_the_similarity_by_its_share():
    query, results, patch_map = patch_pair()
    # f(Q) = (1, 0, 0), f(A) = (0.2, 0, 0); censored to the mean, f = (0, 0, 0):
    # the negated L2 distance goes from -0.8 to -1.
    scores = censor_scores(mean_colour, query, results, patch_map, distance="l2")
    np.testing.assert_allclose(scores, [0.2], atol=1e-6)


def test_the_patch_map_beats_random_censoring_and_an_inverted_map():
    query, results, patch_map = patch_pair()
    faithful = censor_scores(mean_colour, query, results, patch_map, distance="l2")
    inverted = censor_scores(mean_colour, query, results, -patch_map, distance="l2")
    random = random_censor_baseline(mean_colour, query, results, distance="l2", seed=0, repeats=20)
    # Censoring background pixels (already at the mean) changes nothing.
    np.testing.assert_allclose(inverted, [0.0], atol=1e-6)
    # A random 20% holds about 20% of the patch: a drop of about 0.04, far below 0.2.
    assert 0.0 < random[0] < 0.1 < faithful[0]


def test_ties_go_to_the_earlier_pixel_in_row_major_order():
    query, results, _ = patch_pair()
    # A constant map ranks every pixel equal: the first 20 pixels, the patch rows, are censored.
    flat = np.ones((1, 10, 10))
    scores = censor_scores(mean_colour, query, results, flat, distance="l2")
    np.testing.assert_allclose(scores, [0.2], atol=1e-6)


def test_cosine_similarity_is_unchanged_when_censoring_only_rescales_the_embedding():
    query, results, patch_map = patch_pair()
    half = patch_map.copy()
    half[0, 0, :] = 2.0  # the first patch row first, then the second, then the background
    scores = censor_scores(mean_colour, query, results, half, fraction=0.1, distance="cosine")
    # Half the patch left: f = (0.1, 0, 0), still parallel to the query.
    np.testing.assert_allclose(scores, [0.0], atol=1e-6)


def test_zero_pixel_fill_writes_black_in_normalised_units():
    query, results, patch_map = patch_pair()
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    scores = censor_scores(
        mean_colour,
        query,
        results,
        patch_map,
        distance="l2",
        fill="zero_pixel",
        mean=mean,
        std=std,
    )
    # Patch filled with -2 in every channel: f = (-0.4, -0.4, -0.4), distance sqrt(1.4^2 + 0.32).
    expected = np.sqrt(1.4**2 + 2 * 0.4**2) - 0.8
    np.testing.assert_allclose(scores, [expected], atol=1e-6)


@pytest.mark.parametrize("distance", ["hik", "cosine", "l2"])
def test_one_finite_score_per_result_for_every_distance(distance):
    net = tiny_cnn()
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(3, 24, 24, generator=generator)
    results = torch.randn(4, 3, 24, 24, generator=generator)
    maps = np.random.default_rng(0).random((4, 24, 24)).astype(np.float32)
    scores = censor_scores(net, query, results, maps, distance=distance, batch_size=3)
    baseline = random_censor_baseline(net, query, results, distance=distance, seed=1)
    for values in (scores, baseline):
        assert values.shape == (4,)
        assert values.dtype == np.float64
        assert np.isfinite(values).all()


def test_scores_are_deterministic_and_the_baseline_depends_only_on_its_seed():
    net = tiny_cnn()
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(3, 16, 16, generator=generator)
    results = torch.randn(3, 3, 16, 16, generator=generator)
    before = results.clone()
    maps = np.random.default_rng(2).random((3, 16, 16))
    first = censor_scores(net, query, results, maps)
    np.testing.assert_array_equal(first, censor_scores(net, query, results, maps))
    seeded = random_censor_baseline(net, query, results, seed=5)
    np.testing.assert_array_equal(seeded, random_censor_baseline(net, query, results, seed=5))
    assert not np.array_equal(seeded, random_censor_baseline(net, query, results, seed=6))
    # The inputs are not modified.
    assert torch.equal(results, before)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan"), True, "0.2"])
def test_a_fraction_outside_zero_one_is_refused(fraction):
    query, results, patch_map = patch_pair()
    with pytest.raises(ValueError, match="fraction"):
        censor_scores(mean_colour, query, results, patch_map, fraction=fraction)
    with pytest.raises(ValueError, match="fraction"):
        random_censor_baseline(mean_colour, query, results, fraction=fraction)


@pytest.mark.parametrize(
    "shape", [(10, 10), (2, 10, 10), (1, 10, 9), (1, 1, 10, 10)], ids=["2d", "n", "w", "4d"]
)
def test_maps_that_do_not_match_the_results_are_refused(shape):
    query, results, _ = patch_pair()
    with pytest.raises(ValueError, match=r"maps must have shape \(1, 10, 10\)"):
        censor_scores(mean_colour, query, results, np.zeros(shape))


def test_non_finite_maps_and_mismatched_images_are_refused():
    query, results, patch_map = patch_pair()
    bad = patch_map.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        censor_scores(mean_colour, query, results, bad)
    with pytest.raises(ValueError, match="pixels"):
        censor_scores(mean_colour, query[:, :8, :8], results, patch_map)
    with pytest.raises(ValueError, match="results must have shape"):
        censor_scores(mean_colour, query, results[0], patch_map)


def test_unknown_distance_fill_and_negative_hik_features_are_refused():
    query, results, patch_map = patch_pair()
    with pytest.raises(ValueError, match="unknown distance"):
        censor_scores(mean_colour, query, results, patch_map, distance="manhattan")
    with pytest.raises(ValueError, match="unknown fill"):
        censor_scores(mean_colour, query, results, patch_map, fill="blur")
    with pytest.raises(ValueError, match="negative"):
        censor_scores(lambda b: mean_colour(b) - 1.0, query, results, patch_map, distance="hik")
    with pytest.raises(ValueError, match="seed"):
        random_censor_baseline(mean_colour, query, results, seed=-1)


def test_a_map_over_the_query_censors_the_query_as_seed_003_does():
    # the roles swapped: the red patch is in the query, the result is red all over
    result, queries, patch_map = patch_pair()
    query, results = queries[0], result[None]
    # f(Q) = (0.2, 0, 0), f(A) = (1, 0, 0); the query's patch censored: f = (0, 0, 0), so the
    # negated L2 distance goes from -0.8 to -1
    on_query = censor_scores(mean_colour, query, results, patch_map, distance="l2", side="query")
    np.testing.assert_allclose(on_query, [0.2], atol=1e-6)
    # the same map over the result censors the result's top rows instead: f(A) = (0.8, 0, 0),
    # closer to the query, so the similarity rises
    on_result = censor_scores(mean_colour, query, results, patch_map, distance="l2")
    np.testing.assert_allclose(on_result, [-0.2], atol=1e-6)
    with pytest.raises(ValueError, match="side"):
        censor_scores(mean_colour, query, results, patch_map, side="both")
