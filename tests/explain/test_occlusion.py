"""Sliding-window occlusion (seed 002, Sec. 1.1): hand examples, SBSM agreement, config, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explain.methods.occlusion import Occlusion
from explain.methods.sbsm import Sbsm
from tests.explain.nets import mean_colour, tiny_cnn


def red_patch_result() -> torch.Tensor:
    """A 16 x 16 result, mean colour (0) except a red 8 x 8 patch at the top left."""
    result = torch.zeros(1, 3, 16, 16)
    result[0, 0, :8, :8] = 1.0
    return result


def test_occluding_the_patch_that_matches_the_query_scores_highest():
    query = torch.zeros(3, 16, 16)
    query[0] = 1.0  # all red
    maps = Occlusion(window=4, stride=4, distance="l2").explain(
        mean_colour, query, red_patch_result()
    )
    # By hand: f(A) = (0.25, 0, 0), D = 0.75; hiding a 4 x 4 block of the patch leaves
    # f = (0.1875, 0, 0), D' = 0.8125, a drop of 1/16; hiding the mean colour changes nothing.
    expected = np.zeros((16, 16), dtype=np.float32)
    expected[:8, :8] = 1 / 16
    np.testing.assert_allclose(maps[0], expected, atol=1e-6)


def test_overlapping_windows_average_their_scores():
    query = torch.zeros(3, 16, 16)
    query[0] = 1.0
    maps = Occlusion(window=8, stride=4, distance="l2").explain(
        mean_colour, query, red_patch_result()
    )
    # Pixel (0, 0) is only under the window at (0, 0), which hides the whole patch: 0.25.
    assert maps[0, 0, 0] == pytest.approx(0.25, abs=1e-6)
    # Pixel (15, 15) is only under the window at (8, 8), which hides none of it.
    assert maps[0, 15, 15] == 0
    assert np.unravel_index(maps[0].argmax(), (16, 16)) == (0, 0)


def test_maps_equal_sbsm_with_the_mean_fill():
    generator = torch.Generator().manual_seed(3)
    query = torch.randn(3, 24, 24, generator=generator)
    results = torch.randn(2, 3, 24, 24, generator=generator)
    net = tiny_cnn()
    occlusion = Occlusion(window=8, stride=4, distance="hik", batch_size=7)
    sbsm = Sbsm(block=8, stride=4, distance="hik", fill="mean")
    np.testing.assert_allclose(
        occlusion.explain(net, query, results), sbsm.explain(net, query, results), atol=1e-6
    )


def test_maps_are_non_negative_float32_and_deterministic():
    generator = torch.Generator().manual_seed(4)
    query = torch.randn(3, 20, 20, generator=generator)
    results = torch.randn(3, 3, 20, 20, generator=generator)
    method = Occlusion(window=6, stride=3, distance="cosine")
    maps = method.explain(tiny_cnn(), query, results)
    assert maps.shape == (3, 20, 20)
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all()
    assert (maps >= 0).all()
    np.testing.assert_array_equal(maps, method.explain(tiny_cnn(), query, results))


def test_batch_size_does_not_change_the_maps():
    generator = torch.Generator().manual_seed(5)
    query = torch.randn(3, 16, 16, generator=generator)
    results = torch.randn(2, 3, 16, 16, generator=generator)
    one = Occlusion(window=4, stride=2, batch_size=1).explain(tiny_cnn(), query, results)
    many = Occlusion(window=4, stride=2, batch_size=500).explain(tiny_cnn(), query, results)
    np.testing.assert_allclose(one, many, atol=1e-6)


def test_config_round_trips():
    method = Occlusion(window=12, stride=6, distance="l2", batch_size=5)
    assert method.get_config() == {
        "window": 12,
        "stride": 6,
        "distance": "l2",
        "batch_size": 5,
        "precision": "fp32",
    }
    assert Occlusion(**method.get_config()).get_config() == method.get_config()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0}, "window must be >= 1"),
        ({"window": 4, "stride": 8}, r"stride \(8\) must not exceed window \(4\)"),
        ({"window": 4.0}, "window must be an integer"),
        ({"distance": "l1"}, "unknown distance 'l1'"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"batch_size": True}, "batch_size must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Occlusion(**kwargs)


def test_a_window_larger_than_the_image_is_refused():
    with pytest.raises(ValueError, match=r"window \(32\) is larger than the images \(16x16\)"):
        Occlusion(window=32, stride=16).explain(
            mean_colour, torch.zeros(3, 16, 16), torch.zeros(1, 3, 16, 16)
        )


def test_negative_features_are_refused_for_hik():
    with pytest.raises(ValueError, match="negative"):
        Occlusion(window=8, stride=8, distance="hik").explain(
            lambda x: -mean_colour(x).abs() - 1, torch.zeros(3, 16, 16), torch.zeros(1, 3, 16, 16)
        )
