"""Per-class statistics of a hand-built archive equal the values computed by hand."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from retrieval.models import Archive, Category
from retrieval.selectors import category_superclasses
from retrieval.tasks import archive_statistics_refresh

pytestmark = pytest.mark.django_db


def annotation(aid: int, image: int, category: int, area: float) -> dict:
    return {
        "id": aid,
        "image_id": image,
        "category_id": category,
        "bbox": [0, 0, 10, 10],
        "area": area,
    }


@pytest.fixture
def hand_built(tmp_path) -> Archive:
    """Three images, four classes (D has no instance):

    image 1, 100x100 = 10,000 px^2: A (1,000), A (500), B (2,000)  -> classes {A, B}
    image 2, 200x100 = 20,000 px^2: A (4,000), C (2,000)           -> classes {A, C}
    image 3, 100x50  =  5,000 px^2: B (500)                        -> classes {B}
    """
    data = {
        "images": [
            {"id": 1, "file_name": "1.jpg", "width": 100, "height": 100},
            {"id": 2, "file_name": "2.jpg", "width": 200, "height": 100},
            {"id": 3, "file_name": "3.jpg", "width": 100, "height": 50},
        ],
        "annotations": [
            annotation(10, 1, 1, 1000.0),
            annotation(11, 1, 1, 500.0),
            annotation(12, 1, 2, 2000.0),
            annotation(13, 2, 1, 4000.0),
            annotation(14, 2, 3, 2000.0),
            annotation(15, 3, 2, 500.0),
        ],
        "categories": [
            {"id": 1, "name": "A"},
            {"id": 2, "name": "B"},
            {"id": 3, "name": "C"},
            {"id": 4, "name": "D"},
        ],
    }
    (tmp_path / "instances.json").write_text(json.dumps(data))
    call_command(
        "import_coco",
        "--archive",
        "hand",
        str(tmp_path / "instances.json"),
        str(tmp_path),
        stdout=None,
    )
    return Archive.objects.get(name="hand")


def stats(archive: Archive) -> dict[str, tuple]:
    return {
        c.name: (c.instance_count, c.image_count, c.clutter, c.size)
        for c in Category.objects.filter(archive=archive)
    }


def test_statistics_equal_the_hand_computed_values(hand_built):
    found = stats(hand_built)

    # A: 3 instances in images {1, 2}; clutter (2 + 2) / 2; size (0.1 + 0.05 + 0.2) / 3
    assert found["A"][:2] == (3, 2)
    assert found["A"][2] == pytest.approx(2.0)
    assert found["A"][3] == pytest.approx(0.35 / 3)
    # B: 2 instances in images {1, 3}; clutter (2 + 1) / 2; size (0.2 + 0.1) / 2
    assert found["B"] == (2, 2, pytest.approx(1.5), pytest.approx(0.15))
    # C: 1 instance in image 2; clutter 2; size 2,000 / 20,000
    assert found["C"] == (1, 1, pytest.approx(2.0), pytest.approx(0.1))
    # D: no instance, no statistics
    assert found["D"] == (0, 0, None, None)


def test_superclasses_split_the_chosen_classes_in_halves(hand_built):
    chosen = category_superclasses(archive=hand_built, names=["A", "B", "C"])
    # Three classes: the top "half" is one class; A and C tie on clutter, A wins by name.
    assert chosen == {"A": "CS", "B": "UL", "C": "US"}


def test_superclasses_refuse_unknown_or_empty_classes(hand_built):
    with pytest.raises(ValueError, match="no annotated class named 'D', 'zebra'"):
        category_superclasses(archive=hand_built, names=["A", "D", "zebra"])


def test_refreshing_statistics_twice_gives_the_same_values(hand_built):
    before = stats(hand_built)
    Category.objects.filter(archive=hand_built).update(instance_count=99, clutter=7.0)

    assert archive_statistics_refresh.delay(hand_built.pk).get() == 4
    assert archive_statistics_refresh.delay(hand_built.pk).get() == 4

    assert stats(hand_built) == before
