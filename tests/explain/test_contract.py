"""The contract every registered saliency method honours (STYLE habits 11, 12 and 14)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from explain.base import SimilaritySaliency
from explain.registry import (
    get_method,
    list_methods,
    method_config,
    method_from_config,
    register_method,
)
from tests.explain.nets import WithFeatureMap

# Parameters that keep each method fast on 32 x 32 images; every registered method needs one.
SMALL = {
    "sbsm": {"block": 8, "stride": 4, "batch_size": 16},
    "sbsm_c2f": {"block": 8, "stride": 4, "coarse_stride": 8, "batch_size": 16},
    "occlusion": {"window": 8, "stride": 8, "batch_size": 16},
    "rise": {"n_masks": 40, "grid": 4, "batch_size": 16},
    "sam": {"batch_size": 2},
}


def tiny_cnn() -> WithFeatureMap:
    """A seeded CNN embed with a (4, 32, 32) feature map (for SAM) and 16-dim features."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
    ).eval()
    return WithFeatureMap(net, spatial_layers=2)


def small_method(name: str) -> SimilaritySaliency:
    return method_from_config({"method": name, **SMALL[name]})


@pytest.fixture(params=list_methods())
def name(request) -> str:
    return request.param


def test_every_registered_method_has_small_test_parameters(name):
    assert name in SMALL


def test_maps_are_finite_float32_one_per_result(name):
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(3, 32, 32, generator=generator)
    results = torch.randn(3, 3, 32, 32, generator=generator)
    maps = small_method(name).explain(tiny_cnn(), query, results)
    assert maps.shape == (3, 32, 32)
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all()


def test_config_round_trips_through_the_constructor_and_json(name):
    method = small_method(name)
    config = method.get_config()
    assert type(method)(**config).get_config() == config
    assert type(method)(**json.loads(json.dumps(config))).get_config() == config
    stored = method_config(method)
    assert stored["method"] == name
    assert method_from_config(json.loads(json.dumps(stored))).get_config() == config


def test_default_construction_round_trips(name):
    method = get_method(name)()
    assert type(method)(**method.get_config()).get_config() == method.get_config()


@pytest.mark.parametrize(
    ("query_shape", "results_shape", "message"),
    [
        ((3, 32, 32), (3, 32, 32), "results must have shape"),
        ((1, 32, 32), (2, 3, 32, 32), "query must have shape"),
        ((3, 32, 32), (2, 1, 32, 32), "results must have shape"),
        ((3, 32, 32), (2, 3, 32, 30), "same size"),
        ((3, 32, 32), (0, 3, 32, 32), "empty"),
    ],
)
def test_bad_shapes_are_refused(name, query_shape, results_shape, message):
    with pytest.raises(ValueError, match=message):
        small_method(name).explain(tiny_cnn(), torch.zeros(query_shape), torch.zeros(results_shape))


def test_integer_or_non_finite_images_are_refused(name):
    method = small_method(name)
    with pytest.raises(ValueError, match="floating"):
        method.explain(
            tiny_cnn(), torch.zeros(3, 32, 32, dtype=torch.uint8), torch.zeros(1, 3, 32, 32)
        )
    results = torch.zeros(1, 3, 32, 32)
    results[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        method.explain(tiny_cnn(), torch.zeros(3, 32, 32), results)
    with pytest.raises(ValueError, match="callable"):
        method.explain("resnet50", torch.zeros(3, 32, 32), torch.zeros(1, 3, 32, 32))


def test_unknown_names_and_configs_are_refused():
    with pytest.raises(ValueError, match="unknown method 'nope'; valid names"):
        get_method("nope")
    with pytest.raises(ValueError, match="'method' key"):
        method_from_config({"block": 8})
    with pytest.raises(ValueError, match=r"unknown parameters \['blocks'\]"):
        method_from_config({"method": "sbsm", "blocks": 8})


def test_a_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="already registered"):

        @register_method("sbsm")
        class Other(SimilaritySaliency):
            def _explain(self, embed, query, results):
                raise NotImplementedError
