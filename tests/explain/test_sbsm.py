"""SBSM (seed 000, Eq. 1-4) against a literal implementation, hand examples and the fixture CNN."""

from __future__ import annotations

import json
import math
from collections import defaultdict

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter1d

from explain.masks import block_positions, sliding_block_masks
from explain.methods.sbsm import Sbsm
from tests.explain.nets import mean_colour, tiny_cnn

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def images(n: int, size: tuple[int, int] = (32, 32), seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, *size, generator=generator)


# --------------------------------------------------------------------------------------------
# The literal reading of the paper, one forward per mask
# --------------------------------------------------------------------------------------------


def literal_distance(a: torch.Tensor, b: torch.Tensor, distance: str) -> float:
    a, b = a.double(), b.double()
    if distance == "hik":
        return float(1 - torch.minimum(a / a.sum(), b / b.sum()).sum())
    if distance == "l2":
        return float((a - b).norm())
    return float(1 - (a @ b) / (a.norm() * b.norm()))


def literal_occlusion(result: torch.Tensor, mask: torch.Tensor, fill: str, sigma: float):
    """``A (.) m_i``, written as each fill is defined, independently of the method's code."""
    mean = torch.tensor(MEAN)[:, None, None]
    std = torch.tensor(STD)[:, None, None]
    if fill == "zero_pixel":
        # The paper's product in pixel space, then the normalisation again.
        pixels = result * std + mean
        return (pixels * mask - mean) / std
    if fill == "mean":
        return result * mask
    blurred = result.numpy().astype(np.float64)
    for axis in (1, 2):
        blurred = gaussian_filter1d(blurred, sigma, axis=axis, mode="nearest", truncate=3.0)
    return result * mask + torch.from_numpy(blurred).float() * (1 - mask)


def literal_sbsm(embed, query, result, *, block, stride, distance, fill, sigma=2.0):
    height, width = result.shape[1:]
    with torch.no_grad():
        f_query = embed(query[None])[0]
        base = literal_distance(f_query, embed(result[None])[0], distance)  # Eq. 3
        total = np.zeros((height, width))
        count = np.zeros((height, width))
        for m in sliding_block_masks(height, width, block=block, stride=stride):
            mask = torch.from_numpy(m).float()
            occluded = literal_occlusion(result, mask, fill, sigma)
            shifted = literal_distance(f_query, embed(occluded[None])[0], distance)  # Eq. 2
            total += max(shifted - base, 0.0) * (1 - m)  # Eq. 1
            count += 1 - m
    return total / count  # Eq. 4


@pytest.mark.parametrize("fill", ["zero_pixel", "mean", "blur"])
@pytest.mark.parametrize("distance", ["hik", "l2", "cosine"])
def test_sbsm_equals_the_literal_equations(distance, fill):
    model = tiny_cnn()
    query, results = images(1, seed=2)[0], images(2, seed=3)
    method = Sbsm(block=8, stride=4, distance=distance, fill=fill, batch_size=16, blur_sigma=2.0)
    maps = method.explain(model, query, results)
    expected = [
        literal_sbsm(model, query, result, block=8, stride=4, distance=distance, fill=fill)
        for result in results
    ]
    np.testing.assert_allclose(maps, np.stack(expected), rtol=0, atol=1e-5)
    # A check of the test data, not of the method: the maps compared are not all zero.
    assert max(e.max() for e in expected) > 1e-4


@pytest.mark.parametrize("distance", ["hik", "l2"])
def test_sbsm_equals_the_literal_equations_on_an_odd_rectangle(distance):
    model = tiny_cnn(seed=4)
    query, results = images(1, (30, 27), seed=5)[0], images(1, (30, 27), seed=6)
    method = Sbsm(block=7, stride=3, distance=distance, fill="blur", batch_size=10, blur_sigma=2.0)
    maps = method.explain(model, query, results)
    expected = literal_sbsm(
        model, query, results[0], block=7, stride=3, distance=distance, fill="blur"
    )
    np.testing.assert_allclose(maps[0], expected, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------------
# Reuse across queries
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", ["hik", "l2", "cosine"])
def test_masked_embeddings_computed_once_serve_any_query(distance):
    model = tiny_cnn()
    queries, results = images(2, seed=7), images(2, seed=8)
    method = Sbsm(block=8, stride=4, distance=distance, fill="zero_pixel", batch_size=32)
    with torch.no_grad():
        f_queries = model(queries).numpy()
        f_results = model(results).numpy()
    for r, result in enumerate(results):
        masked = method.masked_embeddings(model, result)
        assert masked.shape == (len(block_positions(32, 32, block=8, stride=4)), 16)
        assert masked.dtype == np.float32
        both = method.maps_from_embeddings(f_queries, f_results[r], masked, image_shape=(32, 32))
        assert both.shape == (2, 32, 32)
        for q, query in enumerate(queries):
            direct = method.explain(model, query, results[r : r + 1])[0]
            one = method.maps_from_embeddings(
                f_queries[q], f_results[r], masked, image_shape=(32, 32)
            )
            np.testing.assert_allclose(one, direct, rtol=0, atol=1e-6)
            np.testing.assert_allclose(both[q], direct, rtol=0, atol=1e-6)
        assert not np.allclose(both[0], both[1])  # two queries, two different maps


def test_embed_sees_at_most_batch_size_images_and_each_result_once_unoccluded():
    model = tiny_cnn()
    seen: list[int] = []

    def embed(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.shape[0])
        return model(batch)

    results = images(3)
    Sbsm(block=8, stride=4, batch_size=20).explain(embed, images(1)[0], results)
    n_masks = 49
    assert max(seen) <= 20
    # One query, the three unoccluded results, then every mask of every result.
    assert sum(seen) == 1 + 3 + 3 * n_masks
    assert len(seen) == 1 + 1 + 3 * math.ceil(n_masks / 20)


def test_batch_size_does_not_change_the_maps():
    model = tiny_cnn()
    query, results = images(1, seed=9)[0], images(2, seed=10)
    small = Sbsm(block=8, stride=4, batch_size=1).explain(model, query, results)
    large = Sbsm(block=8, stride=4, batch_size=64).explain(model, query, results)
    np.testing.assert_allclose(small, large, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Hand examples with the mean-colour embedding
# --------------------------------------------------------------------------------------------


def test_hand_example_quadrants_l2():
    # 8x8 result, 1 everywhere but 3 in the top-left quadrant, all channels; query = result.
    # block 4, stride 4: four masks, one per quadrant, each pixel covered once. Occluding a
    # quadrant with 0 ("mean" fill) lowers each channel mean by (quadrant sum) / 64, so
    # D = 0 and D'_i = sqrt(3) * 48 / 64 for the top-left quadrant, sqrt(3) * 16 / 64 otherwise.
    result = torch.ones(3, 8, 8)
    result[:, :4, :4] = 3.0
    maps = Sbsm(block=4, stride=4, distance="l2", fill="mean").explain(
        mean_colour, result, result[None]
    )
    expected = np.full((8, 8), math.sqrt(3) * 16 / 64)
    expected[:4, :4] = math.sqrt(3) * 48 / 64
    np.testing.assert_allclose(maps[0], expected, rtol=1e-6)


def test_hand_example_overlapping_blocks_average_equal_contributions():
    # Constant image, block 4, stride 2 on 8x8: nine masks, each occluding 16 pixels, so every
    # D'_i = sqrt(3) * 16 / 64; pixels covered by 1, 2 or 4 masks all average to that value.
    result = torch.ones(3, 8, 8)
    maps = Sbsm(block=4, stride=2, distance="l2", fill="mean").explain(
        mean_colour, result, result[None]
    )
    np.testing.assert_allclose(maps[0], np.full((8, 8), math.sqrt(3) / 4), rtol=1e-6)


def test_hand_example_zero_pixel_fill_is_zero_before_normalisation():
    # A normalised image whose pixels are all 1 (white). "zero_pixel" turns the block black,
    # which in normalised units is a drop of 1 / std_c per pixel in channel c.
    white = (torch.ones(3, 8, 8) - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[
        :, None, None
    ]
    maps = Sbsm(block=4, stride=4, distance="l2", fill="zero_pixel").explain(
        mean_colour, white, white[None]
    )
    drop = np.array([16 / 64 / s for s in STD])
    np.testing.assert_allclose(maps[0], np.full((8, 8), np.linalg.norm(drop)), rtol=1e-6)


def test_occlusion_that_keeps_the_histogram_leaves_a_zero_map():
    # A grey image: occluding with 0 lowers the three channel means alike, so the L1-normalised
    # histogram, and with it the intersection distance, never changes.
    grey = torch.full((3, 16, 16), 0.5)
    query = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    maps = Sbsm(block=4, stride=2, distance="hik", fill="mean").explain(
        mean_colour, query, grey[None]
    )
    np.testing.assert_allclose(maps, 0.0, atol=1e-7)


def test_occlusion_that_brings_the_result_closer_counts_as_zero():
    # Eq. 1 keeps only increases. The query embeds to the origin; occluding with 0 moves the
    # positive result's mean colour towards it, so every D'_i < D.
    query = torch.zeros(3, 12, 12)
    result = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(1)) + 0.1
    maps = Sbsm(block=4, stride=4, distance="l2", fill="mean").explain(
        mean_colour, query, result[None]
    )
    assert (maps == 0).all()


# --------------------------------------------------------------------------------------------
# What is guaranteed for any network
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", ["hik", "l2", "cosine"])
def test_result_equal_to_query_gives_a_non_negative_map_zero_where_the_network_looks_away(
    distance,
):
    cnn = tiny_cnn(seed=3)

    def left_half(batch: torch.Tensor) -> torch.Tensor:
        return cnn(batch[:, :, :, :16])

    image = images(1, seed=11)[0]
    maps = Sbsm(block=8, stride=4, distance=distance).explain(left_half, image, image[None])
    assert np.isfinite(maps).all()
    assert (maps >= 0).all()
    # Columns >= 20 are covered only by blocks starting at column >= 16, which the network
    # never sees: every covering mask leaves the distance unchanged.
    np.testing.assert_allclose(maps[0, :, 20:], 0.0, atol=1e-6)
    assert maps[0, :, :12].max() > 0


def test_float16_masked_embeddings_from_a_cache_are_accepted():
    model = tiny_cnn()
    query, result = images(1, seed=12)[0], images(1, seed=13)[0]
    method = Sbsm(block=8, stride=4, distance="l2")
    with torch.no_grad():
        f_query, f_result = model(query[None])[0].numpy(), model(result[None])[0].numpy()
    masked = method.masked_embeddings(model, result).astype(np.float16)
    maps = method.maps_from_embeddings(f_query, f_result, masked, image_shape=(32, 32))
    assert maps.shape == (32, 32)
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all()
    assert (maps >= 0).all()


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_masked_embeddings_of_the_wrong_count_are_refused():
    method = Sbsm(block=8, stride=4)
    with pytest.raises(ValueError, match=r"masked must have shape \(49, 5\)"):
        method.maps_from_embeddings(np.ones(5), np.ones(5), np.ones((48, 5)), image_shape=(32, 32))


def test_negative_embeddings_are_refused_for_the_intersection_distance():
    method = Sbsm(block=8, stride=4, distance="hik")
    with pytest.raises(ValueError, match="negative"):
        method.maps_from_embeddings(-np.ones(5), np.ones(5), np.ones((49, 5)), image_shape=(32, 32))


@pytest.mark.parametrize(
    ("embed", "message"),
    [
        (lambda batch: batch.mean(dim=(1, 2, 3)), r"\(B, D\) tensor"),
        (lambda batch: batch.mean(dim=(2, 3))[:1], "rows for"),
        (lambda batch: batch.mean(dim=(2, 3)) * float("nan"), "NaN"),
    ],
)
def test_a_misbehaving_embed_is_reported(embed, message):
    with pytest.raises(ValueError, match=message):
        Sbsm(block=8, stride=4).explain(embed, images(1)[0], images(2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"distance": "l1"}, "unknown distance"),
        ({"fill": "noise"}, "unknown fill"),
        ({"batch_size": 0}, "batch_size"),
        ({"std": (0.2, 0.0, 0.2)}, "std must be > 0"),
        ({"mean": (0.5, 0.5)}, "mean must be 3"),
        ({"blur_sigma": 0}, "blur_sigma"),
        ({"block": 4, "stride": 8}, "must not exceed block"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Sbsm(**kwargs)


# --------------------------------------------------------------------------------------------
# The shipped fixture backbone on synthetic images
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def single_object_images(tmp_path_factory):
    """Synthetic 128 px images holding exactly one object: {category: [(path, bbox), ...]}."""
    from retrieval.synthetic import generate_archive

    folder = tmp_path_factory.mktemp("synthetic-128")
    instances = json.loads(
        generate_archive(folder, n_images=80, seed=5, image_size=128).read_text()
    )
    boxes = defaultdict(list)
    for annotation in instances["annotations"]:
        boxes[annotation["image_id"]].append(annotation)
    by_class = defaultdict(list)
    for image in instances["images"]:
        if len(boxes[image["id"]]) == 1:
            annotation = boxes[image["id"]][0]
            path = folder / "images" / image["file_name"]
            by_class[annotation["category_id"]].append((path, annotation["bbox"]))
    return by_class


def inside_outside(saliency: np.ndarray, bbox: list[float]) -> tuple[float, float]:
    x, y, w, h = bbox
    inside = np.zeros(saliency.shape, dtype=bool)
    inside[int(y) : math.ceil(y + h), int(x) : math.ceil(x + w)] = True
    return float(saliency[inside].mean()), float(saliency[~inside].mean())


@pytest.mark.slow
def test_fixture_backbone_maps_are_higher_on_the_object_than_around_it(single_object_images):
    from retrieval.backbones import BackboneConfig, build_backbone

    backbone = build_backbone(BackboneConfig(name="synthnet", weights="fixture", image_size=128))
    preprocess = backbone.preprocess
    # The blur fill: with black blocks ("zero_pixel") this fixture CNN reacts to the black
    # square itself about as much as to the object (4 of these 8 pairs, against 8 of 8 here).
    method = Sbsm(
        block=20, stride=8, distance="hik", fill="blur", mean=preprocess.mean, std=preprocess.std
    )
    # Classes with at least three single-object images: one result, two same-class queries
    # each; the masked embeddings of a result are computed once and serve both queries.
    groups = [items[:3] for items in single_object_images.values() if len(items) >= 3][:4]
    assert len(groups) >= 3
    outcomes = []
    for (result_path, bbox), *queries in groups:
        result = preprocess(Image.open(result_path))
        with torch.no_grad():
            f_result = backbone(result[None])[0].numpy()
            f_queries = backbone(torch.stack([preprocess(Image.open(p)) for p, _ in queries]))
        masked = method.masked_embeddings(backbone, result)
        maps = method.maps_from_embeddings(
            f_queries.numpy(), f_result, masked, image_shape=(128, 128)
        )
        outcomes += [inside_outside(saliency, bbox) for saliency in maps]
    higher = sum(inside > outside for inside, outside in outcomes)
    print("inside/outside means:", [(round(i, 5), round(o, 5)) for i, o in outcomes])
    assert higher >= 0.75 * len(outcomes)


def test_masked_embeddings_refuse_a_batch_instead_of_one_image():
    with pytest.raises(ValueError, match=r"result must have shape \(3, H, W\)"):
        Sbsm(block=8, stride=4).masked_embeddings(tiny_cnn(), images(2))
