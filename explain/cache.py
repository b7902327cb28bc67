"""A bounded on-disk cache of SBSM masked-embedding stacks (no Django: STYLE habit 9).

:meth:`explain.methods.sbsm.Sbsm.masked_embeddings` is the expensive, query-independent half of
SBSM: one forward pass per mask (2,704 at 224 px with block 20, stride 4) giving an array of
shape ``(n_masks, D)``. A study asks for the maps of the same result image under many queries,
so the stack is computed once and kept here; :meth:`Sbsm.maps_from_embeddings` then derives the
map for any query in milliseconds.

Storage
-------
One ``.npy`` file per stack, ``<root>/<key[:2]>/<key>.npy``, in **float16**. Half precision
halves the bytes (2,704 x 2,048 values are 11 MiB instead of 22 MiB) and is precise enough
for the study's renders. A float16 value carries a relative rounding error of at most 2**-11
(~4.9e-4). Measured on the seeded 16-dimensional test CNN of ``tests/explain/test_cache.py``
(32 x 32 images, block 8, stride 4, "hik", 60 query/result pairs): the per-mask distances
``D'_i`` from the float16 stack stay within 3e-3 relative of the float32 ones, and the SBSM map differs by at most 3.6e-3 times the unoccluded distance ``D`` (median
1.2e-3 D). Relative to the map's *own* maximum the error is larger where occlusion barely moves
the distance (median 3e-3, worst 6e-2), because Eq. 1 subtracts two nearly equal distances; such
weak maps render near-black under a study-wide normaliser anyway. The test asserts
``max |map16 - map32| <= 5e-3 D``. Values beyond float16's range (|x| > 65504) are refused
rather than stored as infinities.

Eviction is least-recently-used by file modification time, which :meth:`get` refreshes on every
hit (modification rather than access time because many file systems are mounted ``noatime`` or
``relatime``). Sizes are bytes on the file as written (header included), not disk blocks.

Several processes may share one folder (the gpu workers of one machine): writes go to a
temporary file in the same folder, flushed to disk, and are published with :func:`os.replace`,
so readers see either no file or a whole one, never a torn one; a file that vanishes while
another process evicts or clears is treated as a miss (reads) or ignored (eviction). Eviction
runs under an exclusive ``flock`` on ``<root>/.evict.lock``, so two writers never both delete
for the same excess (each sees the other's deletions), and the last writer's eviction sees
every finished file: when all writers are done the total is at most ``max_bytes``. While
writers are still running it may exceed the bound by the files not yet evicted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MaskedEmbeddingCache", "cache_key"]

_SUFFIX = ".npy"
_LOCK_NAME = ".evict.lock"
_TEMP_SUFFIX = ".tmp"
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def cache_key(
    image_key: str,
    backbone_config: dict[str, Any],
    weights_sha256: str,
    method_config: dict[str, Any],
) -> str:
    """The cache key of one result image's masked embeddings.

    Parameters
    ----------
    image_key : str
        The image's identity, e.g. ``"archive/image-id"``.
    backbone_config : dict
        The backbone's JSON-able config (layer, input size, preprocessing...).
    weights_sha256 : str
        SHA-256 of the backbone weights, so retrained weights never reuse old stacks.
    method_config : dict
        The saliency method's config (``Sbsm.get_config()``). It may include parameters the
        stack does not depend on (``distance``, ``batch_size``); they only cost a recompute.

    Returns
    -------
    str
        64 lowercase hex digits: the SHA-256 of the canonical JSON of the four parts (keys
        sorted, no whitespace), so the key changes with any part and not with dict order.

    Raises
    ------
    ValueError
        If ``image_key`` or ``weights_sha256`` is not a non-empty string, or a config is not a
        dict of JSON-able values (NaN and infinities included).
    """
    for name, value in (("image_key", image_key), ("weights_sha256", weights_sha256)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    for name, value in (("backbone_config", backbone_config), ("method_config", method_config)):
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be a dict, got {type(value).__name__}")
    parts = {
        "image": image_key,
        "backbone": backbone_config,
        "weights_sha256": weights_sha256,
        "method": method_config,
    }
    try:
        canonical = json.dumps(
            parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"the key parts must be JSON-able: {error}") from None
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_key(key: str) -> str:
    # Keys become file names: only cache_key's hex digests, never a path.
    if not isinstance(key, str) or len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(f"not a cache key (64 lowercase hex digits): {key!r}")
    return key


class MaskedEmbeddingCache:
    """Masked-embedding stacks on disk, float16, bounded by ``max_bytes``; see the module doc.

    Parameters
    ----------
    root : Path
        The cache folder; created if missing. May be shared by several processes.
    max_bytes : int
        Upper bound, in bytes, of the total size of the cached files after each :meth:`put`.
        The stack just written is never evicted, so a single stack larger than the bound stays
        (alone) until the next put.

    Attributes
    ----------
    hits, misses : int
        Counts of :meth:`get` calls (direct or through :meth:`get_or_compute`) of this instance
        that found, or did not find, the stack. Per instance, not shared between processes.
    """

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an integer >= 0, got {max_bytes!r}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, max_bytes={self.max_bytes})"

    def path(self, key: str) -> Path:
        """Where the stack of ``key`` lives (whether or not it exists)."""
        key = _check_key(key)
        return self.root / key[:2] / f"{key}{_SUFFIX}"

    # ----------------------------------------------------------------------------------------
    # Reads
    # ----------------------------------------------------------------------------------------

    def get(self, key: str) -> np.ndarray | None:
        """The stack of ``key``, or None; a hit counts as a use for LRU.

        Returns
        -------
        ndarray of shape (n_masks, D), float16, read-only memory map; or None
            The mapping stays valid even if another process evicts the file afterwards.
        """
        array = self._read(key)
        if array is None:
            self.misses += 1
        else:
            self.hits += 1
        return array

    def _read(self, key: str) -> np.ndarray | None:
        path = self.path(key)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            return None
        except ValueError:
            # Unreadable (only possible if something other than this class wrote it): drop it.
            path.unlink(missing_ok=True)
            return None
        self._touch(path)
        return array

    def touch(self, key: str, *, when_ns: int | None = None) -> bool:
        """Mark ``key`` as used at ``when_ns`` (ns since the epoch; default now) for LRU.

        Returns False if the stack is not cached.
        """
        return self._touch(self.path(key), when_ns=when_ns)

    @staticmethod
    def _touch(path: Path, *, when_ns: int | None = None) -> bool:
        try:
            if when_ns is None:
                os.utime(path)
            else:
                os.utime(path, ns=(when_ns, when_ns))
        except FileNotFoundError:
            return False
        return True

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    # ----------------------------------------------------------------------------------------
    # Writes
    # ----------------------------------------------------------------------------------------

    def put(self, key: str, array: np.ndarray) -> Path:
        """Store ``array`` under ``key`` as float16, then evict down to ``max_bytes``.

        Parameters
        ----------
        key : str
            From :func:`cache_key`.
        array : array-like of shape (n_masks, D), finite, |values| <= 65504
            Any float dtype; stored as its float16 cast.

        Returns
        -------
        Path
            The stack's file.

        Notes
        -----
        Idempotent: a key names its content, so if the file exists it is only touched. Two
        processes putting the same key at once both write a whole temporary file and the later
        :func:`os.replace` wins; either way one valid file remains.
        """
        path = self.path(key)
        stack = self._as_float16(array)
        if self._touch(path):
            self._evict(keep=path)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{key[:8]}-", suffix=_TEMP_SUFFIX
        )
        try:
            with os.fdopen(fd, "wb") as file:
                np.save(file, stack, allow_pickle=False)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        self._evict(keep=path)
        return path

    @staticmethod
    def _as_float16(array: np.ndarray) -> np.ndarray:
        values = np.asarray(array)
        if values.ndim != 2 or values.size == 0:
            raise ValueError(f"array must be a non-empty (n_masks, D) stack, got {values.shape}")
        if not np.issubdtype(values.dtype, np.floating):
            raise ValueError(f"array must be floating, got {values.dtype}")
        if not np.isfinite(values).all():
            raise ValueError("array holds NaN or infinite values")
        if np.abs(values).max() > _FLOAT16_MAX:
            raise ValueError(f"array holds values beyond float16's range (|x| > {_FLOAT16_MAX})")
        return np.ascontiguousarray(values, dtype=np.float16)

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached stack of ``key``, computing and storing it on a miss.

        ``compute()`` must return the ``(n_masks, D)`` stack; it runs only on a miss. The result
        is float16 in both cases, so a hit and a miss give the same values.
        """
        array = self.get(key)
        if array is not None:
            return array
        computed = compute()
        self.put(key, computed)
        stored = self._read(key)
        if stored is None:  # evicted by another process in between
            return self._as_float16(computed)
        return stored

    # ----------------------------------------------------------------------------------------
    # Size and eviction
    # ----------------------------------------------------------------------------------------

    def _entries(self) -> list[tuple[int, str, int, Path]]:
        """(mtime_ns, name, size, path) of every cached stack; vanished files are skipped."""
        entries = []
        for path in self.root.glob(f"??/*{_SUFFIX}"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entries.append((stat.st_mtime_ns, path.name, stat.st_size, path))
        return entries

    def size_bytes(self) -> int:
        """Total size in bytes of the cached stacks (temporary files of writers excluded)."""
        return sum(size for _, _, size, _ in self._entries())

    @property
    def lock_path(self) -> Path:
        """The file whose ``flock`` serialises eviction between processes."""
        return self.root / _LOCK_NAME

    @contextlib.contextmanager
    def _eviction_lock(self):
        with open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _evict(self, *, keep: Path) -> None:
        with self._eviction_lock():
            self._evict_locked(keep=keep)

    def _evict_locked(self, *, keep: Path) -> None:
        entries = self._entries()
        total = sum(size for _, _, size, _ in entries)
        # Oldest use first; the name breaks ties so every process picks the same order.
        for _, _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            # Another process may have removed it already: the bytes are gone either way.
            path.unlink(missing_ok=True)
            total -= size

    def clear(self) -> None:
        """Remove every stack and leftover temporary file; the counters are kept."""
        for pattern in (f"??/*{_SUFFIX}", f"??/.*{_TEMP_SUFFIX}"):
            for path in self.root.glob(pattern):
                path.unlink(missing_ok=True)
