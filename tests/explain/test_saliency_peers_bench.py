"""Helpers of benchmarks/saliency_peers.py: comparable regions, correlations, peer maps.

The benchmark itself is timed by hand; these tests check what its numbers rest on: the region
on which our SBSM map and a peer's are comparable, and that the peers, driven as the benchmark
drives them, give our map (captum exactly, xaitk after max-normalisation on the interior).
The peer tests skip when the benchmark-only packages (requirements-bench.in) are missing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from explain.masks import axis_starts

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "saliency_peers.py"
_SPEC = importlib.util.spec_from_file_location("saliency_peers_bench", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)


def test_same_grid_is_comparable_everywhere():
    ours = axis_starts(224, block=20, stride=4)
    region = bench.comparable_region(ours, ours.copy(), height=224, width=224, block=20)
    assert region.shape == (224, 224)
    assert region.all()


def test_centred_clipped_grid_is_comparable_on_the_interior_only():
    # xaitk's geometry at 224 / 20 / 4: starts 0, 4, ..., 220 shifted by 8 to centre them.
    ours = axis_starts(224, block=20, stride=4)
    theirs = np.arange(0, 224, 4) - 8
    region = bench.comparable_region(ours, theirs, height=224, width=224, block=20)
    inside = np.flatnonzero(region[100])
    assert inside[0] == 16
    assert inside[-1] == 207
    assert region.sum() == 192 * 192
    # The rectangle is the outer product of the two axes.
    assert not region[15].any()
    assert not region[208].any()


def test_windows_are_identified_by_their_clipped_interval():
    cover = bench.axis_windows(np.array([-8, 0]), 24, 20)
    assert cover[0] == {(0, 12), (0, 20)}
    assert cover[15] == {(0, 20)}
    assert cover[20] == frozenset()
    # A window overhanging the far border covers up to the last pixel only.
    assert bench.axis_windows(np.array([10]), 24, 20)[23] == {(10, 24)}


def test_pearson_uses_only_the_region_and_is_nan_for_a_flat_map():
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[:2] = np.arange(8).reshape(2, 4)
    b[:2] = 3 * np.arange(8).reshape(2, 4) + 1
    b[2:] = [[50.0, -50.0, 50.0, -50.0], [-50.0, 50.0, -50.0, 50.0]]
    region = np.zeros((4, 4), dtype=bool)
    region[:2] = True
    assert bench.pearson(a, b, region) == pytest.approx(1.0)
    assert bench.pearson(a, b) < 0.99
    assert np.isnan(bench.pearson(np.ones((3, 3)), np.arange(9.0).reshape(3, 3)))


def test_pearson_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        bench.pearson(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="region"):
        bench.pearson(np.zeros((2, 2)), np.zeros((2, 2)), np.ones((3, 3), dtype=bool))


def test_max_normalise_scales_the_peak_to_one_and_keeps_zero_maps():
    out = bench.max_normalise(np.array([[0.0, 2.0], [-4.0, 1.0]]))
    assert np.abs(out).max() == 1.0
    assert out[1, 0] == -1.0
    assert out[0, 1] == 0.5
    assert not bench.max_normalise(np.zeros((2, 2))).any()


# ---------------------------------------------------------------------------
# The peers, driven as in the benchmark, on a small image.
# ---------------------------------------------------------------------------


@pytest.fixture
def torch_threads():
    # run_method sets the thread count of the process it runs in; restore it afterwards.
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _run(method: str, pairs: np.ndarray, block: int = 8) -> dict:
    return bench.run_method(
        {
            "method": method,
            "backbone": "resnet18",
            "block": block,
            "stride": 4,
            "batch": 16,
            "threads": 1,
            "pairs": pairs,
        }
    )


@pytest.fixture(scope="module")
def pairs() -> np.ndarray:
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, size=(1, 2, 32, 32, 3), dtype=np.uint8)


@pytest.mark.usefixtures("torch_threads")
def test_captum_occlusion_with_the_clipped_similarity_gives_our_map(pairs):
    pytest.importorskip("captum")
    ours = _run("ours", pairs)
    captum = _run("captum", pairs)
    assert ours["forwards"] == 7 * 7 + 2
    ours_map, captum_map = ours["maps"][0], captum["maps"][0]
    assert ours_map.max() > 0
    # Same scale, no normalisation: Eq. 4 itself (ours derives from a float16 stack).
    np.testing.assert_allclose(captum_map, ours_map, atol=2e-3 * ours_map.max())


@pytest.mark.usefixtures("torch_threads")
def test_xaitk_sbsm_stack_matches_our_map_on_the_comparable_region(pairs):
    pytest.importorskip("xaitk_saliency")
    # Block 12, stride 4 at 32 px: xaitk centres its 8 x 8 windows by shifting them 4 pixels,
    # a whole stride, so its grid contains ours (6 x 6) and the interior 8..23 is comparable.
    # (A shift that is not a multiple of the stride leaves no comparable pixel at all.)
    ours = _run("ours", pairs, block=12)
    xaitk = _run("xaitk", pairs, block=12)
    captum_starts, xaitk_starts = bench.peer_starts(32, 12, 4)
    assert captum_starts.tolist() == axis_starts(32, block=12, stride=4).tolist()
    assert xaitk_starts.tolist() == (np.arange(0, 32, 4) - 4).tolist()
    assert ours["forwards"] == 6 * 6 + 2
    assert xaitk["forwards"] == 8 * 8 + 2
    region = bench.comparable_region(
        axis_starts(32, block=12, stride=4), xaitk_starts, height=32, width=32, block=12
    )
    assert region.sum() == 16 * 16
    assert region[8:24, 8:24].all()
    assert ours["maps"][0][region].std() > 0
    assert bench.pearson(ours["maps"][0], xaitk["maps"][0], region) > 0.999
    # xaitk divides by the maximum over the whole map, borders included.
    assert np.abs(xaitk["maps"][0]).max() == pytest.approx(1.0)
