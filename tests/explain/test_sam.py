"""Search Activation Maps (seed 003, Eq. 3): hand-built feature maps, backbones, config, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explain.methods.sam import Sam, sam_maps
from tests.explain.nets import WithFeatureMap, tiny_cnn


class PixelFeatures:
    """An embed whose feature map is the image itself (C = 3, h x w = H x W), or pooled."""

    def __init__(self, pool: int = 1) -> None:
        self.pool = pool
        self.embed_calls = 0

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.embed_calls += 1
        return batch.mean(dim=(2, 3))

    def feature_map(self, batch: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(batch, self.pool) if self.pool > 1 else batch


def test_the_location_that_matches_the_query_is_1_the_others_0():
    query = torch.zeros(3, 8, 8)
    query[0] = 2.0  # pooled query vector (2, 0, 0): red
    result = torch.zeros(1, 3, 8, 8)
    result[0, 1] = 1.0  # green everywhere: orthogonal to the query, cosine 0 ...
    result[0, :, 2, 5] = torch.tensor([3.0, 0.0, 0.0])  # ... except one red column, cosine 1
    result[0, :, 6, 1] = torch.tensor([-1.0, 0.0, 0.0])  # anti-red: cosine -1, cut by the ReLU
    embed = PixelFeatures()
    maps = Sam().explain(embed, query, result)
    expected = np.zeros((8, 8), dtype=np.float32)
    expected[2, 5] = 1.0  # same size, so the bilinear upsampling is the identity
    np.testing.assert_allclose(maps[0], expected, atol=1e-6)
    assert embed.embed_calls == 0  # Eq. 3 needs only the feature maps


def test_the_query_vector_is_the_mean_of_its_feature_map_and_columns_are_normalised():
    query = torch.zeros(3, 4, 4)
    query[0, :2] = 1.0  # mean (0.5, 0.5, 0): half red, half green
    query[1, 2:] = 1.0
    result = torch.zeros(1, 3, 4, 4)
    result[0, 0] = 5.0  # pure red at every location, any length
    maps = Sam().explain(PixelFeatures(), query, result)
    np.testing.assert_allclose(maps[0], np.full((4, 4), 2**-0.5), rtol=1e-6)


def test_coarse_maps_are_upsampled_bilinearly_with_the_peak_on_the_matching_cell():
    query = torch.zeros(3, 16, 16)
    query[2] = 1.0  # blue
    result = torch.zeros(1, 3, 16, 16)
    result[0, 1] = 1.0
    result[0, :, 4:8, 8:12] = torch.tensor([0.0, 0.0, 1.0])[:, None, None]  # cell (1, 2)
    maps = Sam().explain(PixelFeatures(pool=4), query, result)
    coarse = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    coarse[0, 0, 1, 2] = 1.0
    expected = F.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False)[0, 0]
    np.testing.assert_allclose(maps[0], expected.numpy(), atol=1e-6)
    top, left = np.unravel_index(maps[0].argmax(), (16, 16))
    assert 4 <= top < 8
    assert 8 <= left < 12


def test_sam_maps_is_the_einstein_contraction_of_eq_3():
    generator = torch.Generator().manual_seed(0)
    query_map = torch.randn(6, 3, 5, generator=generator)
    result_maps = torch.randn(2, 6, 4, 4, generator=generator)
    g = query_map.mean(dim=(1, 2))
    f = result_maps / result_maps.norm(dim=1, keepdim=True)
    a = torch.einsum("nchw,c->nhw", f, g / g.norm()).clamp_min(0)
    maps = sam_maps(query_map, result_maps, (4, 4))
    np.testing.assert_allclose(maps, a.numpy(), atol=1e-6)


def test_maps_of_a_network_use_its_feature_map_and_results_are_independent():
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(3, 24, 24, generator=generator)
    results = torch.randn(3, 3, 24, 24, generator=generator)
    cnn = tiny_cnn()  # spatial output: the second conv's ReLU, 16 x 11 x 11
    net = WithFeatureMap(cnn, spatial_layers=4)
    maps = Sam(batch_size=2).explain(net, query, results)
    assert maps.shape == (3, 24, 24)
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all()
    assert (maps >= 0).all()
    assert (maps <= 1).all()
    alone = Sam().explain(net, query, results[2:])
    np.testing.assert_allclose(maps[2:], alone, atol=1e-6)
    np.testing.assert_array_equal(maps, Sam(batch_size=2).explain(net, query, results))
    spatial = cnn[:4](results)
    assert spatial.shape == (3, 16, 11, 11)
    # One batch of 3 against batches of 2: convolutions may round differently (float32 ulps).
    np.testing.assert_allclose(
        maps, sam_maps(cnn[:4](query[None])[0], spatial, (24, 24)), rtol=0, atol=1e-6
    )


def test_config_round_trips():
    method = Sam(batch_size=4)
    assert method.get_config() == {"batch_size": 4, "precision": "fp32"}
    assert Sam(**method.get_config()).get_config() == method.get_config()


def test_an_embed_without_a_feature_map_is_refused_naming_what_is_needed():
    def embed(batch):
        return batch.mean(dim=(2, 3))

    with pytest.raises(ValueError, match=r"feature_map\(batch\)"):
        Sam().explain(embed, torch.zeros(3, 8, 8), torch.zeros(1, 3, 8, 8))
    bare = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()).eval()
    with pytest.raises(ValueError, match=r"feature_map\(batch\)"):
        Sam().explain(bare, torch.zeros(3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_a_bad_feature_map_is_refused():
    class Flat(PixelFeatures):
        def feature_map(self, batch):
            return batch.mean(dim=(2, 3))

    with pytest.raises(ValueError, match=r"feature_map must return a \(1, C, h, w\) tensor"):
        Sam().explain(Flat(), torch.zeros(3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="same C"):
        sam_maps(torch.zeros(4, 2, 2), torch.zeros(1, 3, 2, 2), (8, 8))


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True])
def test_bad_batch_sizes_are_refused(batch_size):
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        Sam(batch_size=batch_size)
