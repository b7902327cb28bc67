"""Stratified label shuffles for permutation tests: the with-XAI sums of every class under
many within-class relabellings, vectorised (the sampler behind ``analysis.permutation``).

Random stream: each permutation has one uint32 key per slot of a padded layout (the ``t``-th
point of class ``s`` in slot ``(t, s)``, :func:`padded_layout`), drawn by :func:`key_blocks`
in blocks of permutations to bound memory. Walking each class's points in data order, a
point takes the with-XAI label with probability (labels still to give in its class) /
(points left in its class), decided by its key: selection sampling (Knuth's Algorithm S),
which gives every within-class relabelling with the class's observed with-XAI count the
same probability. A loop over permutations reading the same keys reproduces it exactly
(see the tests); here the Python loop runs over the positions ``t`` (as many as the largest
class has points), each step two vector operations over all classes and permutations of a
block, and one ``einsum`` per attribute turns the labels into with-XAI sums. Memory: about 150 MB at most.
"""

from __future__ import annotations

import numpy as np

__all__ = ["key_blocks", "null_with_sums", "padded_layout"]

_BLOCK_KEYS = 8_000_000  # keys per block (32 MB of uint32 keys, 64 MB of float64 labels)


def key_blocks(rng: np.random.Generator, rows: int, n_permutations: int):
    """The random keys, block by block: ``(start, keys)`` with ``keys`` of shape (rows, b).

    ``keys`` are uint32; column ``j`` holds the keys of permutation ``start + j`` and row
    ``r`` belongs to slot ``r`` of the padded layout (:func:`padded_layout`). A block holds
    ``max(1, 8_000_000 // rows)`` permutations (the last one fewer). Any implementation
    that draws its keys here consumes the same random stream.
    """
    block = max(1, min(n_permutations, _BLOCK_KEYS // max(rows, 1)))
    for start in range(0, n_permutations, block):
        width = min(block, n_permutations - start)
        # Full-range uint64 draws split in two uint32 keys: the cheapest bits numpy offers.
        raw = rng.integers(
            0, 2**64 - 1, size=(rows, (width + 1) // 2), dtype=np.uint64, endpoint=True
        )
        yield start, raw.view(np.uint32)[:, :width]


def padded_layout(codes: np.ndarray, n_strata: int) -> np.ndarray:
    """Slot of every data point: array of shape (n,) with ``slot = t * n_strata + s`` for
    the ``t``-th point (in data order) of stratum ``s``; there are ``depth * n_strata``
    slots, ``depth`` the largest stratum's size, and the unused ones are padding."""
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=n_strata)
    step = np.empty(codes.size, dtype=np.int64)
    step[order] = np.arange(codes.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return step * n_strata + codes


def null_with_sums(
    values: np.ndarray,
    is_xai: np.ndarray,
    codes: np.ndarray,
    n_strata: int,
    n_permutations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """With-XAI sums per stratum under each permutation: (n_permutations, n_strata, n_attr).

    Selection sampling (Knuth's Algorithm S) per stratum: walking its points in data order,
    a point takes the with-XAI label with probability ``need / rem`` (labels still to give /
    points left, itself included), decided by its key: ``key * rem < need * 2**32``
    (computed exactly; the probability is within 2**-32 of ``need / rem``). All strata walk
    side by side in the padded layout: step ``t`` decides the ``t``-th point of every
    stratum for all permutations of a block in two vector operations, so the Python loop has
    as many steps as the largest stratum has points. A padding slot is never chosen (its
    stratum has no label left to give by then).
    """
    n_attr = values.shape[1]
    if values.shape[0] == 0:  # nothing to shuffle (the caller reports empty groups)
        return np.zeros((n_permutations, n_strata, n_attr))
    sizes = np.bincount(codes, minlength=n_strata)
    depth = int(sizes.max())
    slot = padded_layout(codes, n_strata)
    rem = np.zeros(depth * n_strata)  # points left in the stratum, the point included
    rem[slot] = sizes[codes] - slot // n_strata
    # key * (rem / 2**32) < need is exact in float64 (key * rem < 2**53).
    scale = (rem * 2.0**-32).reshape(depth, n_strata, 1)
    padded_values = np.zeros((depth * n_strata, n_attr))
    padded_values[slot] = values
    padded_values = padded_values.reshape(depth, n_strata, n_attr)
    ks = np.bincount(codes, weights=is_xai.astype(float), minlength=n_strata)
    out = np.empty((n_permutations, n_strata, n_attr))
    labels = need = None
    for start, keys in key_blocks(rng, depth * n_strata, n_permutations):
        width = keys.shape[1]
        if labels is None or labels.shape[2] != width:
            labels, need = np.empty((depth, n_strata, width)), np.empty((n_strata, width))
        np.multiply(keys.reshape(depth, n_strata, width), scale, out=labels)
        need[:] = ks[:, None]
        for t in range(depth):  # scaled keys become 0/1 labels, one step at a time
            np.less(labels[t], need, out=labels[t])
            np.subtract(need, labels[t], out=need)
        for a in range(n_attr):  # one einsum per attribute beats a batched matmul here
            out[start : start + width, :, a] = np.einsum(
                "tsw,ts->ws", labels, padded_values[:, :, a]
            )
    return out
