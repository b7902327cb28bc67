"""RISE for similarity (seed 002, Sec. 1.1): masks, the formula by hand, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explain.methods.rise import Rise, rise_masks
from tests.explain.nets import mean_colour, tiny_cnn


def random_images(n: int, size: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(3, size, size, generator=generator), torch.randn(
        n, 3, size, size, generator=generator
    )


def test_masks_are_in_0_1_keep_about_p_and_depend_only_on_the_seed():
    masks = rise_masks(400, 20, 24, grid=4, keep_probability=0.3, seed=7)
    assert masks.shape == (400, 20, 24)
    assert masks.dtype == np.float32
    assert masks.min() >= 0
    assert masks.max() <= 1
    assert masks.mean() == pytest.approx(0.3, abs=0.03)
    again = rise_masks(400, 20, 24, grid=4, keep_probability=0.3, seed=7)
    np.testing.assert_array_equal(masks, again)
    other = rise_masks(400, 20, 24, grid=4, keep_probability=0.3, seed=8)
    assert not np.array_equal(masks, other)


def test_masks_are_smooth_and_shifted_not_on_a_fixed_grid():
    masks = rise_masks(50, 16, 16, grid=4, keep_probability=0.5, seed=0)
    # Bilinear upsampling gives values strictly between 0 and 1 at the cell borders.
    assert ((masks > 0.05) & (masks < 0.95)).any()
    # Random shifts: the masks are not all constant on the same 4 x 4 cells.
    first_cells = masks[:, :4, :4]
    assert not np.allclose(first_cells, first_cells[:, :1, :1])


def test_maps_follow_the_formula_with_the_documented_similarity():
    query, results = random_images(2)
    net = tiny_cnn()
    for distance in ("hik", "cosine", "l2"):
        method = Rise(n_masks=30, grid=4, keep_probability=0.5, distance=distance, seed=3)
        maps = method.explain(net, query, results)
        masks = rise_masks(30, 16, 16, grid=4, keep_probability=0.5, seed=3)
        with torch.no_grad():
            q = net(query[None])[0].double()
            for i, result in enumerate(results):
                features = net(result[None] * torch.from_numpy(masks)[:, None]).double()
                if distance == "hik":
                    qn, fn = q / q.sum(), features / features.sum(dim=1, keepdim=True)
                    weights = torch.minimum(qn, fn).sum(dim=1)  # the intersection, 1 - d
                elif distance == "cosine":
                    weights = torch.nn.functional.cosine_similarity(features, q[None], dim=1)
                else:
                    weights = -(features - q).norm(dim=1)
                expected = np.einsum("n,nhw->hw", weights.numpy(), masks) / (30 * 0.5)
                expected -= min(expected.min(), 0)
                np.testing.assert_allclose(maps[i], expected, rtol=1e-4, atol=1e-5)


def red_and_constant(batch: torch.Tensor) -> torch.Tensor:
    """A non-negative "embedding" for hik: (mean positive red, 0.1), shape (B, 2)."""
    red = batch[:, 0].clamp_min(0).mean(dim=(1, 2))
    return torch.stack([red, torch.full_like(red, 0.1)], dim=1)


def test_the_patch_that_matches_the_query_scores_highest():
    query = torch.zeros(3, 32, 32)
    query[0] = 1.0  # all red
    result = torch.zeros(1, 3, 32, 32)
    result[0, 0, :16, :16] = 1.0  # a red patch on the mean colour
    maps = Rise(n_masks=1000, grid=4, distance="hik", seed=0).explain(
        red_and_constant, query, result
    )
    # By hand: a mask keeping a fraction k of the patch gives the intersection
    # w = k / (k + 0.1) + 0.1 / 1.1, growing with k, so masks that keep the patch weigh more.
    patch = np.zeros((32, 32), dtype=bool)
    patch[:16, :16] = True
    assert maps[0][patch].mean() > maps[0][~patch].mean() + 0.03
    assert patch[np.unravel_index(maps[0].argmax(), (32, 32))]


def test_l2_maps_are_shifted_to_minimum_0():
    query, results = random_images(2)
    maps = Rise(n_masks=20, grid=4, distance="l2").explain(tiny_cnn(), query, results)
    # -d is negative everywhere, so each map is shifted by its own minimum.
    np.testing.assert_array_equal(maps.min(axis=(1, 2)), [0, 0])
    assert (maps.max(axis=(1, 2)) > 0).all()


def test_same_seed_same_maps_whatever_the_batch_size():
    query, results = random_images(2)
    maps = Rise(n_masks=25, grid=4, seed=11, batch_size=4).explain(tiny_cnn(), query, results)
    same = Rise(n_masks=25, grid=4, seed=11, batch_size=25).explain(tiny_cnn(), query, results)
    other = Rise(n_masks=25, grid=4, seed=12, batch_size=4).explain(tiny_cnn(), query, results)
    np.testing.assert_allclose(maps, same, rtol=1e-5, atol=1e-7)
    assert not np.allclose(maps, other)


def test_maps_are_finite_non_negative_float32_on_non_square_images():
    generator = torch.Generator().manual_seed(2)
    query = torch.randn(3, 18, 26, generator=generator)
    results = torch.randn(3, 3, 18, 26, generator=generator)
    for distance in ("hik", "cosine", "l2"):
        maps = Rise(n_masks=20, grid=5, distance=distance).explain(tiny_cnn(), query, results)
        assert maps.shape == (3, 18, 26)
        assert maps.dtype == np.float32
        assert np.isfinite(maps).all()
        assert (maps >= 0).all()


def test_config_round_trips():
    method = Rise(n_masks=10, grid=3, keep_probability=0.25, distance="cosine", seed=5)
    assert method.get_config() == {
        "n_masks": 10,
        "grid": 3,
        "keep_probability": 0.25,
        "distance": "cosine",
        "seed": 5,
        "batch_size": 64,
        "precision": "fp32",
    }
    assert Rise(**method.get_config()).get_config() == method.get_config()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_masks": 0}, "n_masks must be an integer >= 1"),
        ({"grid": 2.5}, "grid must be an integer >= 1"),
        ({"keep_probability": 0}, r"keep_probability must be in \(0, 1\]"),
        ({"keep_probability": 1.5}, r"keep_probability must be in \(0, 1\]"),
        ({"distance": "dot"}, "unknown distance 'dot'"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"seed": None}, "seed must be an integer >= 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Rise(**kwargs)


def test_a_grid_finer_than_the_image_is_refused():
    with pytest.raises(ValueError, match=r"grid \(20\) is larger than the images \(16x16\)"):
        Rise(n_masks=2, grid=20).explain(
            mean_colour, torch.zeros(3, 16, 16), torch.zeros(1, 3, 16, 16)
        )
