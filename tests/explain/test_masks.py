"""Sliding-block masks of SBSM (seed 000, Sec. 2): positions, coverage, counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from explain.masks import (
    axis_cover,
    axis_starts,
    block_positions,
    mask_counts,
    sliding_block_masks,
)


def test_paper_setting_gives_52_positions_per_axis_and_2704_masks():
    starts = axis_starts(224, block=20, stride=4)
    assert len(starts) == 52
    assert starts[0] == 0
    assert starts[-1] == 204
    assert block_positions(224, 224, block=20, stride=4).shape == (2704, 2)


def test_last_block_is_flush_with_the_border_when_the_stride_does_not_divide():
    # 37 - 8 = 29 is not a multiple of 4: starts 0..28 by 4, then 29.
    starts = axis_starts(37, block=8, stride=4)
    assert starts.tolist() == [0, 4, 8, 12, 16, 20, 24, 28, 29]
    assert len(starts) == math.ceil((37 - 8) / 4) + 1


def test_no_extra_block_when_the_stride_divides():
    assert axis_starts(32, block=8, stride=4).tolist() == [0, 4, 8, 12, 16, 20, 24]


def test_positions_are_row_major_over_top_then_left():
    positions = block_positions(12, 16, block=8, stride=4)
    rows, cols = axis_starts(12, block=8, stride=4), axis_starts(16, block=8, stride=4)
    assert positions.tolist() == [[r, c] for r in rows for c in cols]


@pytest.mark.parametrize(("height", "width", "block", "stride"), [(32, 32, 8, 4), (37, 23, 7, 3)])
def test_each_mask_occludes_exactly_its_block(height, width, block, stride):
    masks = sliding_block_masks(height, width, block=block, stride=stride)
    positions = block_positions(height, width, block=block, stride=stride)
    assert masks.shape == (len(positions), height, width)
    assert masks.dtype == np.uint8
    for mask, (top, left) in zip(masks, positions, strict=True):
        assert (mask[top : top + block, left : left + block] == 0).all()
        assert mask.sum() == height * width - block * block


@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    block=st.integers(1, 12),
    stride=st.integers(1, 12),
)
def test_every_pixel_is_occluded_by_at_least_one_mask(height, width, block, stride):
    if block > min(height, width) or stride > block:
        return
    masks = sliding_block_masks(height, width, block=block, stride=stride)
    counts = mask_counts(height, width, block=block, stride=stride)
    # mask_counts is the literal sum of (1 - m_i) of Eq. 4.
    np.testing.assert_array_equal(counts, (1 - masks.astype(np.int64)).sum(axis=0))
    assert counts.min() >= 1
    n_rows = math.ceil((height - block) / stride) + 1
    n_cols = math.ceil((width - block) / stride) + 1
    assert len(masks) == n_rows * n_cols


def test_axis_cover_marks_the_pixels_of_each_block():
    cover = axis_cover(10, block=4, stride=3)
    starts = axis_starts(10, block=4, stride=3)
    assert cover.shape == (10, len(starts))
    for j, start in enumerate(starts):
        assert cover[:, j].tolist() == [1.0 if start <= p < start + 4 else 0.0 for p in range(10)]


def test_block_as_large_as_the_image_gives_one_mask_occluding_everything():
    masks = sliding_block_masks(6, 6, block=6, stride=2)
    assert masks.shape == (1, 6, 6)
    assert (masks == 0).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"block": 33, "stride": 4}, "larger than the image"),
        ({"block": 8, "stride": 0}, "stride must be >= 1"),
        ({"block": 0, "stride": 1}, "block must be >= 1"),
        ({"block": 4, "stride": 5}, "must not exceed block"),
        ({"block": 4.0, "stride": 2}, "block must be an integer"),
        ({"block": True, "stride": 1}, "block must be an integer"),
    ],
)
def test_bad_block_or_stride_is_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        block_positions(32, 32, **kwargs)


def test_empty_image_is_refused():
    with pytest.raises(ValueError, match="size must be >= 1"):
        axis_starts(0, block=1, stride=1)
