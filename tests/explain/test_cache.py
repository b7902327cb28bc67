"""The masked-embedding cache: keys, float16 storage, LRU bound, processes, SBSM precision."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from explain.cache import MaskedEmbeddingCache, cache_key
from explain.methods.sbsm import Sbsm
from retrieval.backbones import features_l1_normalise
from retrieval.search import distances
from tests.explain.nets import tiny_cnn

BACKBONE = {"name": "tiny", "layer": "pool", "size": 32}
METHOD = {"method": "sbsm", "block": 8, "stride": 4, "fill": "zero_pixel"}
SHA = "ab" * 32


def key(name: str) -> str:
    return cache_key(f"archive/{name}", BACKBONE, SHA, METHOD)


def stack(seed: int, shape: tuple[int, int] = (49, 16)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def file_bytes(shape: tuple[int, int] = (49, 16)) -> int:
    return 128 + 2 * shape[0] * shape[1]  # .npy header of 128 bytes, then float16 values


def test_round_trip_stores_the_float16_cast(tmp_path: Path) -> None:
    cache = MaskedEmbeddingCache(tmp_path, max_bytes=10**6)
    array = stack(0)
    cache.put(key("a"), array)
    stored = cache.get(key("a"))
    assert stored is not None
    assert stored.dtype == np.float16
    assert stored.shape == array.shape
    np.testing.assert_array_equal(stored, array.astype(np.float16))
    assert not stored.flags.writeable
    assert cache.size_bytes() == file_bytes()


def test_a_missing_key_is_a_miss(tmp_path: Path) -> None:
    cache = MaskedEmbeddingCache(tmp_path, max_bytes=10**6)
    assert cache.get(key("nothing")) is None
    assert (cache.hits, cache.misses) == (0, 1)


def test_key_changes_with_every_part_and_not_with_dict_order() -> None:
    base = cache_key("archive/1", BACKBONE, SHA, METHOD)
    assert len(base) == 64
    variants = [
        cache_key("archive/2", BACKBONE, SHA, METHOD),
        cache_key("archive/1", {**BACKBONE, "size": 64}, SHA, METHOD),
        cache_key("archive/1", BACKBONE, "cd" * 32, METHOD),
        cache_key("archive/1", BACKBONE, SHA, {**METHOD, "block": 16}),
    ]
    assert len({base, *variants}) == 5
    reordered = cache_key(
        "archive/1", dict(reversed(BACKBONE.items())), SHA, dict(reversed(METHOD.items()))
    )
    assert reordered == base


@pytest.mark.parametrize("bad", ["", "../x", "AB" * 32, "ab" * 31])
def test_only_hex_digests_are_keys(tmp_path: Path, bad: str) -> None:
    cache = MaskedEmbeddingCache(tmp_path, max_bytes=10**6)
    with pytest.raises(ValueError, match="cache key"):
        cache.get(bad)


def test_bad_arrays_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    cache = MaskedEmbeddingCache(tmp_path, max_bytes=10**6)
    for bad in (np.ones(5), np.array([[np.nan]]), np.array([[1e6]]), np.ones((2, 2), int)):
        with pytest.raises(ValueError, match="array"):
            cache.put(key("bad"), bad)
    assert cache.size_bytes() == 0
    assert key("bad") not in cache


def test_eviction_removes_the_least_recently_used_until_under_the_bound(tmp_path: Path) -> None:
    cache = MaskedEmbeddingCache(tmp_path, max_bytes=3 * file_bytes())
    names = ["a", "b", "c"]
    for i, name in enumerate(names):
        cache.put(key(name), stack(i))
    # Control the order of use explicitly: b oldest, then c, then a.
    cache.touch(key("b"), when_ns=1_000_000_000)
    cache.touch(key("c"), when_ns=2_000_000_000)
    cache.touch(key("a"), when_ns=3_000_000_000)
    cache.put(key("d"), stack(3))
    assert cache.size_bytes() <= cache.max_bytes
    assert key("b") not in cache
    assert all(key(name) in cache for name in ("a", "c", "d"))
    # A hit counts as a use: after reading c, a is the least recently used.
    os.utime(cache.path(key("d")), ns=(4_000_000_000, 4_000_000_000))
    assert cache.get(key("c")) is not None
    cache.put(key("e"), stack(4))
    assert key("a") not in cache
    assert all(key(name) in cache for name in ("c", "d", "e"))
    assert cache.size_bytes() <= cache.max_bytes


def test_the_stack_just_written_is_never_evicted(tmp_path: Path) -> None:
    cache = MaskedEmbeddingCache(tmp_path, max_bytes=file_bytes() - 1)
    cache.put(key("a"), stack(0))
    cache.put(key("big"), stack(1))
    assert key("big") in cache
    assert key("a") not in cache


def test_put_is_idempotent(tmp_path: Path) -> None:
    cache = MaskedEmbeddingCache(tmp_path, max_bytes=10**6)
    first = cache.put(key("a"), stack(0))
    second = cache.put(key("a"), stack(0))
    assert first == second
    assert cache.size_bytes() == file_bytes()
    names = sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and p != cache.lock_path)
    assert names == [first.name]


def test_get_or_compute_computes_once(tmp_path: Path) -> None:
    cache = MaskedEmbeddingCache(tmp_path, max_bytes=10**6)
    calls = []

    def compute() -> np.ndarray:
        calls.append(1)
        return stack(0)

    first = cache.get_or_compute(key("a"), compute)
    second = cache.get_or_compute(key("a"), compute)
    assert len(calls) == 1
    assert (cache.hits, cache.misses) == (1, 1)
    assert first.dtype == second.dtype == np.float16
    np.testing.assert_array_equal(first, second)


def test_clear_empties_the_folder(tmp_path: Path) -> None:
    cache = MaskedEmbeddingCache(tmp_path, max_bytes=10**6)
    cache.put(key("a"), stack(0))
    (cache.path(key("a")).parent / ".deadbeef-x.tmp").write_bytes(b"left by a crash")
    cache.clear()
    assert cache.size_bytes() == 0
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p != cache.lock_path]


def _put_many(root: str, seed: int) -> None:
    cache = MaskedEmbeddingCache(Path(root), max_bytes=10**7)
    for _ in range(20):
        cache.put(key("shared"), stack(seed, (400, 64)))
        cache.path(key("shared")).unlink(missing_ok=True)  # force the next put to write again
    cache.put(key("shared"), stack(seed, (400, 64)))


def test_concurrent_puts_of_one_key_leave_one_valid_file(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_put_many, args=(str(tmp_path), 7)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]
    cache = MaskedEmbeddingCache(tmp_path, max_bytes=10**7)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p != cache.lock_path]
    assert files == [cache.path(key("shared"))]
    np.testing.assert_array_equal(cache.get(key("shared")), stack(7, (400, 64)).astype(np.float16))


def _put_distinct(root: str, worker: int, max_bytes: int) -> None:
    cache = MaskedEmbeddingCache(Path(root), max_bytes=max_bytes)
    for i in range(12):
        cache.put(key(f"w{worker}-{i}"), stack(100 * worker + i, (200, 32)))


def test_workers_sharing_the_cache_leave_whole_files_within_the_bound(tmp_path: Path) -> None:
    size = file_bytes((200, 32))
    bound = 5 * size
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_put_distinct, args=(str(tmp_path), worker, bound))
        for worker in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]
    cache = MaskedEmbeddingCache(tmp_path, max_bytes=bound)
    assert 0 < cache.size_bytes() <= bound
    assert not list(tmp_path.rglob("*.tmp"))
    kept = 0
    for worker in range(4):
        for i in range(12):
            found = cache.get(key(f"w{worker}-{i}"))
            if found is not None:
                kept += 1
                expected = stack(100 * worker + i, (200, 32)).astype(np.float16)
                np.testing.assert_array_equal(found, expected)
    assert kept == cache.size_bytes() // size
    # Each worker's last stack was written after every other eviction of that worker.
    assert kept >= 1


# --------------------------------------------------------------------------------------------
# float16 is precise enough for SBSM
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_maps_from_the_float16_cache_match_the_float32_path(tmp_path: Path, seed: int) -> None:
    net = tiny_cnn(seed)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed + 1))
    sbsm = Sbsm(block=8, stride=4, distance="hik")
    with torch.inference_mode():
        query, result = net(images).numpy()
    masked = sbsm.masked_embeddings(net, images[1])
    cache = MaskedEmbeddingCache(tmp_path, max_bytes=10**6)
    k = cache_key("archive/result", {"name": "tiny", "seed": seed}, SHA, sbsm.get_config())
    cached = cache.get_or_compute(k, lambda: masked)
    assert cached.dtype == np.float16

    exact = sbsm.maps_from_embeddings(query, result, masked, image_shape=(32, 32))
    from_cache = sbsm.maps_from_embeddings(query, result, cached, image_shape=(32, 32))
    # The bound of explain/cache.py: |map16 - map32| <= 5e-3 D, D = d(f(Q), f(A)) (Eq. 3).
    q = features_l1_normalise(query[None].astype(np.float64))
    d = distances(
        features_l1_normalise(result[None].astype(np.float64)), q, metric="hik", device="numpy"
    )
    base = float(np.asarray(d)[0, 0])
    assert exact.max() > 0
    assert np.abs(from_cache - exact).max() <= 5e-3 * base
    # And each occluded distance D'_i is within 5e-3 relative.
    d32 = np.asarray(
        distances(features_l1_normalise(masked.astype(np.float64)), q, metric="hik", device="numpy")
    )
    d16 = np.asarray(
        distances(features_l1_normalise(cached.astype(np.float64)), q, metric="hik", device="numpy")
    )
    np.testing.assert_allclose(d16, d32, rtol=5e-3)
