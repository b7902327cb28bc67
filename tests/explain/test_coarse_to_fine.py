"""Coarse-to-fine SBSM: exact SBSM where it refines, fewer forward passes, a round-tripping config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from explain.methods.sbsm import Sbsm
from explain.methods.sbsm_coarse_to_fine import SbsmCoarseToFine, _interpolation
from explain.registry import get_method, method_config, method_from_config
from tests.explain.nets import tiny_cnn

FINE = {"block": 8, "stride": 2, "distance": "hik", "fill": "zero_pixel", "batch_size": 32}


class Counting:
    """An embed that counts the images it is given."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.model = net
        self.images = 0

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.images += batch.shape[0]
        return self.model(batch)


def images(seed: int = 0, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(3, size, size, generator=generator), torch.rand(
        2, 3, size, size, generator=generator
    )


@pytest.mark.parametrize("distance", ["hik", "l2", "cosine"])
@pytest.mark.parametrize("coarse_stride", [4, 8])
def test_refining_everywhere_equals_exact_sbsm(distance, coarse_stride):
    query, results = images(1)
    net = tiny_cnn()
    config = {**FINE, "distance": distance}

    exact = Sbsm(**config).explain(net, query, results)
    approx = SbsmCoarseToFine(**config, coarse_stride=coarse_stride, quantile=0.0).explain(
        net, query, results
    )

    assert np.abs(approx - exact).max() <= 1e-5 * max(float(exact.max()), 1e-12)


def test_refining_everywhere_equals_exact_sbsm_on_an_uneven_rectangle():
    # 30 x 27 pixels: the last block of each axis is flush with the border, off the stride.
    generator = torch.Generator().manual_seed(2)
    query = torch.rand(3, 30, 27, generator=generator)
    results = torch.rand(1, 3, 30, 27, generator=generator)
    net = tiny_cnn()

    exact = Sbsm(**FINE).explain(net, query, results)
    approx = SbsmCoarseToFine(**FINE, coarse_stride=6, quantile=0.0).explain(net, query, results)

    assert np.abs(approx - exact).max() <= 1e-5 * max(float(exact.max()), 1e-12)


def test_the_map_is_exact_on_the_refined_region_and_costs_fewer_passes():
    query, results = images(3)
    net = tiny_cnn()
    counting = Counting(net)
    method = SbsmCoarseToFine(**FINE, coarse_stride=8, quantile=0.8)

    out = method.coarse_to_fine(counting, query, results[0])
    exact = Sbsm(**FINE).explain(net, query, results[:1])[0]

    assert out.region.any()
    assert not out.region.all()
    scale = max(float(exact.max()), 1e-12)
    assert np.abs(out.saliency[out.region] - exact[out.region]).max() <= 1e-5 * scale
    # 13 x 13 = 169 fine blocks; 4 x 4 = 16 coarse ones, plus the fine ones over the region.
    assert out.exact_passes == 169
    assert counting.images == 2 + out.masked_passes  # the query and the result, unmasked
    assert out.masked_passes < out.exact_passes
    assert (out.saliency >= 0).all()


def test_fewer_passes_through_the_public_interface_too():
    query, results = images(4)
    exact_embed, c2f_embed = Counting(tiny_cnn()), Counting(tiny_cnn())

    Sbsm(**FINE).explain(exact_embed, query, results)
    SbsmCoarseToFine(**FINE, coarse_stride=8).explain(c2f_embed, query, results)

    assert c2f_embed.images < exact_embed.images


def test_a_higher_quantile_refines_less():
    query, results = images(5)
    net = tiny_cnn()
    passes = [
        SbsmCoarseToFine(**FINE, coarse_stride=8, quantile=q)
        .coarse_to_fine(net, query, results[0])
        .masked_passes
        for q in (0.0, 0.5, 0.9)
    ]
    assert passes[0] >= passes[1] >= passes[2]
    assert passes[0] > passes[2]


def test_interpolation_is_exact_at_coarse_positions_and_linear_between():
    weights = _interpolation(np.array([0, 2, 4, 6, 8, 10]), np.array([0, 4, 8, 10]))
    values = weights @ np.array([1.0, 3.0, 5.0, 9.0])
    assert values.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 9.0]
    assert np.allclose(weights.sum(axis=1), 1.0)


def test_config_round_trips_and_the_method_is_registered():
    method = SbsmCoarseToFine(block=20, stride=4)
    config = method.get_config()
    assert config["coarse_stride"] == 20  # the default resolves to the largest multiple
    assert type(method)(**config).get_config() == config
    stored = method_config(method)
    assert stored["method"] == "sbsm_c2f"
    assert get_method("sbsm_c2f") is SbsmCoarseToFine
    assert method_from_config(json.loads(json.dumps(stored))).get_config() == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block": 8, "stride": 2, "coarse_stride": 3}, "multiple of stride"),
        ({"block": 8, "stride": 2, "coarse_stride": 10}, "must not exceed block"),
        ({"block": 8, "stride": 2, "coarse_stride": 0}, "stride must be >= 1"),
        ({"quantile": 1.0}, "quantile"),
        ({"quantile": -0.1}, "quantile"),
        ({"quantile": float("nan")}, "quantile"),
        ({"stride": 0}, "stride must be >= 1"),
        ({"distance": "manhattan"}, "unknown distance"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SbsmCoarseToFine(**kwargs)


def test_a_block_larger_than_the_image_is_refused():
    query, results = images(6, size=16)
    with pytest.raises(ValueError, match="larger than the image"):
        SbsmCoarseToFine(block=20, stride=4).explain(tiny_cnn(), query, results)
