"""Sliding-block occlusion masks of SBSM (seed 000, Sec. 2).

Each mask ``m_i`` is 1 (kept) everywhere except a ``block x block`` square of 0 (occluded); the
square slides over the image with step ``stride``. Along each axis the starts are
``0, stride, 2 * stride, ...`` while the block fits, plus one last start flush with the border
when ``size - block`` is not a multiple of ``stride``, so every pixel is covered by at least one
block. That gives ``ceil((size - block) / stride) + 1`` starts per axis: 52 per axis, 2,704
masks, for the paper's 224 x 224 images with ``block=20, stride=4``.

Masks are ordered row-major over (top, left): mask ``i`` has top ``rows[i // n_cols]`` and left
``cols[i % n_cols]``. Because the positions form a grid, every per-pixel sum over masks is
separable: ``sum_i w_i (1 - m_i) = R @ w.reshape(n_rows, n_cols) @ C.T`` with ``R``, ``C`` the
:func:`axis_cover` matrices of the two axes. SBSM uses this instead of materialising the masks;
:func:`sliding_block_masks` exists for tests and small images.

No Django and no torch here: plain numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "axis_cover",
    "axis_starts",
    "block_positions",
    "check_block_stride",
    "mask_counts",
    "sliding_block_masks",
]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_block_stride(block: object, stride: object) -> tuple[int, int]:
    """Validate ``block`` and ``stride`` alone (without an image size).

    Returns
    -------
    (block, stride) : tuple of int

    Raises
    ------
    ValueError
        If either is not an integer, ``block < 1``, ``stride < 1`` or ``stride > block`` (a
        stride longer than the block would leave pixels that no mask occludes).
    """
    block = _check_int("block", block, 1)
    stride = _check_int("stride", stride, 1)
    if stride > block:
        raise ValueError(
            f"stride ({stride}) must not exceed block ({block}): pixels between blocks would "
            "never be occluded"
        )
    return block, stride


def axis_starts(size: int, *, block: int, stride: int) -> np.ndarray:
    """Block starts along one axis of ``size`` pixels.

    Returns
    -------
    ndarray of shape (ceil((size - block) / stride) + 1,), int64
        ``0, stride, ...`` while ``start + block <= size``, then ``size - block`` if the border
        is not yet reached. Strictly increasing; the last block ends at ``size``.

    Raises
    ------
    ValueError
        Bad ``block``/``stride`` (see :func:`check_block_stride`), ``size < 1`` or
        ``block > size``.
    """
    size = _check_int("size", size, 1)
    block, stride = check_block_stride(block, stride)
    if block > size:
        raise ValueError(f"block ({block}) is larger than the image side ({size})")
    starts = np.arange(0, size - block + 1, stride, dtype=np.int64)
    if starts[-1] + block < size:
        # Last block flush with the border, so that the last pixels are covered too.
        starts = np.append(starts, size - block)
    return starts


def axis_cover(size: int, *, block: int, stride: int) -> np.ndarray:
    """Which block starts cover which pixel along one axis.

    Returns
    -------
    ndarray of shape (size, n_starts), float64
        ``[p, j] = 1`` if pixel ``p`` lies in the block starting at ``axis_starts(...)[j]``,
        else 0. Every row has at least one 1.
    """
    starts = axis_starts(size, block=block, stride=stride)
    pixels = np.arange(size)[:, None]
    return ((pixels >= starts) & (pixels < starts + block)).astype(np.float64)


def block_positions(height: int, width: int, *, block: int, stride: int) -> np.ndarray:
    """(top, left) of every occluded block, in mask order (row-major).

    Returns
    -------
    ndarray of shape (n_rows * n_cols, 2), int64
        Column 0 is the top row, column 1 the left column of mask ``i``'s block.
    """
    rows = axis_starts(height, block=block, stride=stride)
    cols = axis_starts(width, block=block, stride=stride)
    top, left = np.meshgrid(rows, cols, indexing="ij")
    return np.stack([top.ravel(), left.ravel()], axis=1)


def sliding_block_masks(height: int, width: int, *, block: int, stride: int) -> np.ndarray:
    """All masks ``m_i`` at once: 1 = kept, 0 = occluded.

    Memory is ``n_masks * height * width`` bytes (135 MB for 224 x 224, block 20, stride 4):
    meant for tests and small images; SBSM itself never builds this array.

    Returns
    -------
    ndarray of shape (n_masks, height, width), uint8
        In the order of :func:`block_positions`.
    """
    positions = block_positions(height, width, block=block, stride=stride)
    masks = np.ones((len(positions), height, width), dtype=np.uint8)
    for i, (top, left) in enumerate(positions):
        masks[i, top : top + block, left : left + block] = 0
    return masks


def mask_counts(height: int, width: int, *, block: int, stride: int) -> np.ndarray:
    """``sum_i (1 - m_i)``: how many masks occlude each pixel (the denominator of Eq. 4).

    Returns
    -------
    ndarray of shape (height, width), int64
        Every entry >= 1.
    """
    rows = axis_cover(height, block=block, stride=stride).sum(axis=1)
    cols = axis_cover(width, block=block, stride=stride).sum(axis=1)
    return np.outer(rows, cols).astype(np.int64)
