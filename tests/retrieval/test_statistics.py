"""`retrieval.statistics`: per-class clutter/size and the four superclasses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retrieval.statistics import ClassStatistics, class_statistics, superclasses

# A hand-built table: 4 images (ids 10, 20, 30, 40), 3 categories (ids 5, 7, 90).
#
#   image  image area  annotations (category: area)      distinct categories
#   10     100         5: 10, 5: 20, 7: 30                2  (5, 7)
#   20     200         5: 50, 90: 20                      2  (5, 90)
#   30     100         7: 40                              1  (7)
#   40     400         5: 100, 7: 40, 90: 80              3  (5, 7, 90)
#
# category 5:  instances 4, images {10, 20, 40} -> 3
#              clutter = (2 + 2 + 3) / 3 = 7/3
#              size = (10/100 + 20/100 + 50/200 + 100/400) / 4 = (0.1+0.2+0.25+0.25)/4 = 0.2
# category 7:  instances 3, images {10, 30, 40} -> 3
#              clutter = (2 + 1 + 3) / 3 = 2
#              size = (30/100 + 40/100 + 40/400) / 3 = (0.3+0.4+0.1)/3 = 0.8/3
# category 90: instances 2, images {20, 40} -> 2
#              clutter = (2 + 3) / 2 = 2.5
#              size = (20/200 + 80/400) / 2 = (0.1+0.2)/2 = 0.15
HAND_ROWS = [
    # image_id, category_id, area, image_area
    (10, 5, 10.0, 100.0),
    (10, 5, 20.0, 100.0),
    (10, 7, 30.0, 100.0),
    (20, 5, 50.0, 200.0),
    (20, 90, 20.0, 200.0),
    (30, 7, 40.0, 100.0),
    (40, 5, 100.0, 400.0),
    (40, 7, 40.0, 400.0),
    (40, 90, 80.0, 400.0),
]
HAND_EXPECTED = {
    5: (4, 3, 7 / 3, 0.2),
    7: (3, 3, 2.0, 0.8 / 3),
    90: (2, 2, 2.5, 0.15),
}


def columns(rows):
    image_ids, category_ids, areas, image_areas = zip(*rows, strict=True)
    return (
        np.array(image_ids),
        np.array(category_ids),
        np.array(areas, dtype=float),
        np.array(image_areas, dtype=float),
    )


def assert_hand_example(result):
    assert list(result) == [5, 7, 90]
    assert all(type(key) is int for key in result)
    for category, (instances, images, clutter, size) in HAND_EXPECTED.items():
        stats = result[category]
        assert isinstance(stats, ClassStatistics)
        assert stats.instance_count == instances
        assert stats.image_count == images
        assert stats.clutter == pytest.approx(clutter, rel=1e-12)
        assert stats.size == pytest.approx(size, rel=1e-12)


def test_hand_example():
    assert_hand_example(class_statistics(*columns(HAND_ROWS)))


def test_row_order_does_not_matter():
    rows = [HAND_ROWS[i] for i in np.random.default_rng(0).permutation(len(HAND_ROWS))]
    assert_hand_example(class_statistics(*columns(rows)))


def test_huge_and_negative_ids():
    # Ids far apart take the np.unique path instead of the bincount lookup table.
    rows = [(i * 10**12, -c, a, ia) for i, c, a, ia in HAND_ROWS]
    result = class_statistics(*columns(rows))
    assert list(result) == [-90, -7, -5]
    for category, (instances, images, clutter, size) in HAND_EXPECTED.items():
        stats = result[-category]
        assert (stats.instance_count, stats.image_count) == (instances, images)
        assert stats.clutter == pytest.approx(clutter, rel=1e-12)
        assert stats.size == pytest.approx(size, rel=1e-12)


def test_accepts_lists_and_returns_plain_python_numbers():
    image_ids, category_ids, areas, image_areas = (list(c) for c in zip(*HAND_ROWS, strict=True))
    result = class_statistics(image_ids, category_ids, areas, image_areas)
    assert_hand_example(result)
    stats = result[5]
    assert type(stats.instance_count) is int
    assert type(stats.clutter) is float
    with pytest.raises(AttributeError):
        stats.clutter = 1.0  # frozen


def test_empty_input_gives_empty_dict():
    assert class_statistics([], [], [], []) == {}
    empty = np.array([], dtype=np.int64)
    assert class_statistics(empty, empty, empty.astype(float), empty.astype(float)) == {}


def naive_statistics(image_ids, category_ids, areas, image_areas):
    """Slow, obviously correct reference implementation."""
    classes_in_image: dict[int, set[int]] = {}
    for image, category in zip(image_ids, category_ids, strict=True):
        classes_in_image.setdefault(int(image), set()).add(int(category))
    result = {}
    for category in sorted(set(category_ids.tolist())):
        rows = category_ids == category
        images = set(image_ids[rows].tolist())
        result[category] = (
            int(rows.sum()),
            len(images),
            sum(len(classes_in_image[i]) for i in images) / len(images),
            float(np.mean(areas[rows] / image_areas[rows])),
        )
    return result


def test_matches_naive_reference_on_random_table():
    rng = np.random.default_rng(42)
    n = 3000
    image_ids = rng.integers(-50, 400, n)  # negative and sparse ids are fine
    category_ids = rng.choice([1, 3, 17, 18, 90, 1000], n, p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.05])
    per_image_area = {i: float(rng.integers(1000, 5000)) for i in np.unique(image_ids)}
    image_areas = np.array([per_image_area[i] for i in image_ids])
    areas = image_areas * rng.uniform(0, 1, n)
    result = class_statistics(image_ids, category_ids, areas, image_areas)
    expected = naive_statistics(image_ids, category_ids, areas, image_areas)
    assert list(result) == list(expected)
    for category, (instances, images, clutter, size) in expected.items():
        stats = result[category]
        assert (stats.instance_count, stats.image_count) == (instances, images)
        assert stats.clutter == pytest.approx(clutter, rel=1e-12)
        assert stats.size == pytest.approx(size, rel=1e-12)


def test_one_million_rows_are_all_counted():
    rng = np.random.default_rng(1)
    n = 1_000_000
    image_ids = rng.integers(0, 120_000, n)
    category_ids = rng.integers(1, 81, n)
    image_areas = np.full(n, 640.0 * 480.0)
    areas = rng.uniform(0, 1, n) * image_areas
    result = class_statistics(image_ids, category_ids, areas, image_areas)
    assert len(result) == 80
    assert sum(s.instance_count for s in result.values()) == n
    assert sum(s.image_count for s in result.values()) == len(
        np.unique(image_ids * 100 + category_ids)
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: (c[0][:-1], c[1], c[2], c[3]), "equal lengths"),
        (lambda c: (c[0].reshape(3, 3), c[1], c[2], c[3]), "1-D"),
        (lambda c: (c[0].astype(float), c[1], c[2], c[3]), "image_ids must hold integers"),
        (lambda c: (c[0], c[1].astype(float), c[2], c[3]), "category_ids must hold integers"),
        (lambda c: (c[0], c[1], -c[2], c[3]), "areas must be >= 0"),
        (lambda c: (c[0], c[1], c[2], c[3] * 0), "image_areas must be > 0"),
        (lambda c: (c[0], c[1], c[3], c[2]), "larger than its image area"),
        (lambda c: (c[0], c[1], c[2] * np.nan, c[3]), "finite"),
    ],
)
def test_invalid_input_raises(change, message):
    with pytest.raises(ValueError, match=message):
        class_statistics(*change(columns(HAND_ROWS)))


# superclasses ---------------------------------------------------------------


def test_superclasses_hand_example_with_ties():
    # Five classes: the top half is floor(5 / 2) = 2 classes.
    # clutter ranking: a (3.0), then b and c tie at 2.0 -> b wins on name,
    #   so Cluttered = {a, b}.
    # size ranking: b (0.5), then c, d, e tie at 0.3 -> c wins on name,
    #   so Large = {b, c}.
    clutter = {"e": 0.5, "d": 1.0, "c": 2.0, "b": 2.0, "a": 3.0}
    size = {"a": 0.1, "b": 0.5, "c": 0.3, "d": 0.3, "e": 0.3}
    result = superclasses(clutter, size)
    assert result == {"a": "CS", "b": "CL", "c": "UL", "d": "US", "e": "US"}
    assert list(result) == ["a", "b", "c", "d", "e"]


def test_superclasses_even_count_and_integer_like_values():
    clutter = {"x": 4, "y": 1, "z": 3, "w": 2}
    size = {"x": 0.01, "y": 0.02, "z": 0.4, "w": 0.3}
    assert superclasses(clutter, size) == {"w": "UL", "x": "CS", "y": "US", "z": "CL"}


def test_superclasses_accepts_class_statistics_fields():
    stats = class_statistics(*columns(HAND_ROWS))
    names = {5: "five", 7: "seven", 90: "ninety"}
    # clutter: ninety 2.5 > five 7/3 > seven 2 -> Cluttered = {ninety}
    # size: seven 0.267 > five 0.2 > ninety 0.15 -> Large = {seven}
    result = superclasses(
        {names[c]: s.clutter for c, s in stats.items()},
        {names[c]: s.size for c, s in stats.items()},
    )
    assert result == {"five": "US", "ninety": "CS", "seven": "UL"}


def test_superclasses_split_sizes_on_random_inputs():
    rng = np.random.default_rng(3)
    for n in range(2, 30):
        names = [f"class{i:02d}" for i in range(n)]
        # Few distinct values, so ties are common.
        clutter = dict(zip(names, rng.integers(0, 4, n).astype(float), strict=True))
        size = dict(zip(names, rng.integers(0, 4, n) / 10, strict=True))
        result = superclasses(clutter, size)
        codes = list(result.values())
        assert sum(code[0] == "C" for code in codes) == n // 2
        assert sum(code[1] == "L" for code in codes) == n // 2
        # Every Cluttered class has clutter >= every Uncluttered one.
        cluttered = [clutter[k] for k, v in result.items() if v[0] == "C"]
        uncluttered = [clutter[k] for k, v in result.items() if v[0] == "U"]
        assert min(cluttered) >= max(uncluttered)


def test_superclasses_key_mismatch_names_the_classes():
    with pytest.raises(ValueError, match=r"only in clutter: \['b'\], only in size: \['c'\]"):
        superclasses({"a": 1.0, "b": 2.0}, {"a": 1.0, "c": 2.0})


@pytest.mark.parametrize("classes", [{}, {"a": 1.0}])
def test_superclasses_needs_two_classes(classes):
    with pytest.raises(ValueError, match="at least 2 classes"):
        superclasses(classes, dict(classes))


def test_superclasses_rejects_non_finite_values():
    with pytest.raises(ValueError, match=r"size must be finite; not finite for \['b'\]"):
        superclasses({"a": 1.0, "b": 2.0}, {"a": 0.1, "b": math.nan})
