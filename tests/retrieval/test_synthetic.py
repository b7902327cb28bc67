"""`retrieval.synthetic`: the deterministic synthetic COCO-format archive."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retrieval.statistics import class_statistics, superclasses
from retrieval.synthetic import CLASSES, TEXTURES, generate_archive, unit_polygon

PAPER_SUPERCLASSES = {
    "CL": {"dining_table", "microwave", "oven", "sink", "toaster", "vase"},
    "CS": {"book", "chair", "fork", "knife", "spoon", "wine_glass"},
    "UL": {"cake", "keyboard", "laptop", "sandwich", "tv", "umbrella"},
    "US": {"apple", "backpack", "carrot", "clock", "handbag", "orange"},
}
SEEDS = (11, 2024)
N_IMAGES = 400


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def archive(request, tmp_path_factory) -> tuple[Path, dict]:
    """A 400-image archive per seed: (folder, parsed instances.json)."""
    folder = tmp_path_factory.mktemp(f"synthetic-{request.param}")
    path = generate_archive(folder, n_images=N_IMAGES, seed=request.param)
    assert path == folder / "instances.json"
    return folder, json.loads(path.read_text(encoding="utf-8"))


def shoelace(flat: list[float]) -> float:
    x, y = np.array(flat[0::2]), np.array(flat[1::2])
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# Determinism -----------------------------------------------------------------


def test_same_seed_gives_byte_identical_archives(tmp_path):
    first = folder_bytes(generate_archive(tmp_path / "a", n_images=25, seed=5).parent)
    second = folder_bytes(generate_archive(tmp_path / "b", n_images=25, seed=5).parent)
    assert len(first) == 26  # 25 images + instances.json
    assert first == second


def test_different_seed_gives_different_archive(tmp_path):
    first = folder_bytes(generate_archive(tmp_path / "a", n_images=25, seed=5).parent)
    other = folder_bytes(generate_archive(tmp_path / "b", n_images=25, seed=6).parent)
    assert first["instances.json"] != other["instances.json"]
    differing = [name for name in first if name.endswith(".jpg") and first[name] != other[name]]
    assert len(differing) == 25


def test_first_images_do_not_depend_on_archive_length(tmp_path):
    short = folder_bytes(generate_archive(tmp_path / "a", n_images=5, seed=9).parent)
    long = folder_bytes(generate_archive(tmp_path / "b", n_images=12, seed=9).parent)
    for name, content in short.items():
        if name.endswith(".jpg"):
            assert long[name] == content


def test_progress_reports_each_image(tmp_path):
    calls: list[int] = []
    generate_archive(tmp_path, n_images=7, seed=0, progress=calls.append)
    assert calls == [1, 2, 3, 4, 5, 6, 7]


# Class table -----------------------------------------------------------------


def test_class_table_is_the_papers_24_classes():
    assert [spec.category_id for spec in CLASSES] == list(range(1, 25))
    by_code = {
        code: {s.name for s in CLASSES if s.supercategory == code} for code in PAPER_SUPERCLASSES
    }
    assert by_code == PAPER_SUPERCLASSES
    assert all(spec.cluttered == spec.supercategory.startswith("C") for spec in CLASSES)
    assert all(spec.large == spec.supercategory.endswith("L") for spec in CLASSES)


def test_classes_are_visually_distinct():
    assert len({spec.shape for spec in CLASSES}) == 24
    assert len({(spec.color, spec.texture) for spec in CLASSES}) == 24
    assert {spec.texture for spec in CLASSES} <= set(TEXTURES)
    for spec in CLASSES:
        polygon = unit_polygon(spec.shape)
        assert polygon.shape[1] == 2
        assert shoelace(polygon.reshape(-1).tolist()) == pytest.approx(1.0)


def test_target_sizes_separate_large_from_small():
    fraction = {spec.name: spec.area_fraction for spec in CLASSES}
    large = [spec.area_fraction for spec in CLASSES if spec.large]
    small = [spec.area_fraction for spec in CLASSES if not spec.large]
    assert min(large) > 2 * max(small)
    assert max(fraction, key=fraction.get) == "dining_table"
    assert min(fraction, key=fraction.get) == "spoon"
    assert 30 <= fraction["dining_table"] / fraction["spoon"] <= 40


# COCO validity -----------------------------------------------------------------


def test_archive_is_valid_coco(archive):
    folder, doc = archive
    assert list(doc) == ["info", "licenses", "images", "annotations", "categories"]

    images = doc["images"]
    assert [image["id"] for image in images] == list(range(1, N_IMAGES + 1))
    for image in images:
        assert set(image) == {"id", "file_name", "width", "height"}
        assert image["file_name"] == f"{image['id']:012d}.jpg"
        assert (image["width"], image["height"]) == (160, 160)
    image_by_id = {image["id"]: image for image in images}

    categories = doc["categories"]
    assert [c["id"] for c in categories] == list(range(1, 25))
    assert all(set(c) == {"id", "name", "supercategory"} for c in categories)
    assert {c["name"] for c in categories} == set().union(*PAPER_SUPERCLASSES.values())
    category_ids = {c["id"] for c in categories}

    annotations = doc["annotations"]
    assert [a["id"] for a in annotations] == list(range(1, len(annotations) + 1))
    for ann in annotations:
        assert set(ann) == {
            "id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd"
        }  # fmt: skip
        assert ann["category_id"] in category_ids
        assert ann["iscrowd"] == 0
        image = image_by_id[ann["image_id"]]
        (flat,) = ann["segmentation"]
        assert len(flat) >= 6
        assert len(flat) % 2 == 0
        assert all(round(v, 2) == v for v in flat)
        xs, ys = flat[0::2], flat[1::2]
        x, y, w, h = ann["bbox"]
        tol = 1e-6
        assert x == pytest.approx(min(xs), abs=tol)
        assert y == pytest.approx(min(ys), abs=tol)
        assert x + w == pytest.approx(max(xs), abs=tol)
        assert y + h == pytest.approx(max(ys), abs=tol)
        assert x >= 0
        assert y >= 0
        assert x + w <= image["width"]
        assert y + h <= image["height"]
        assert ann["area"] == pytest.approx(shoelace(flat), rel=1e-6)
        assert 0 < ann["area"] < w * h + tol

    for image in images:
        with Image.open(folder / "images" / image["file_name"]) as pil:
            assert pil.format == "JPEG"
            assert pil.mode == "RGB"
            assert pil.size == (image["width"], image["height"])


def test_every_image_has_objects_and_none_overlap(archive):
    _, doc = archive
    boxes: dict[int, list[list[float]]] = {image["id"]: [] for image in doc["images"]}
    for ann in doc["annotations"]:
        boxes[ann["image_id"]].append(ann["bbox"])
    counts = [len(b) for b in boxes.values()]
    assert min(counts) >= 1
    assert max(counts) <= 5
    for image_boxes in boxes.values():
        for (x1, y1, w1, h1), (x2, y2, w2, h2) in combinations(image_boxes, 2):
            apart = x1 + w1 < x2 or x2 + w2 < x1 or y1 + h1 < y2 or y2 + h2 < y1
            assert apart, (image_boxes,)


def test_pixels_follow_the_polygons(archive):
    # Solid, convex classes: the pixels around the polygon's vertex mean must
    # show the class colour (up to the +-12 % brightness jitter and JPEG).
    folder, doc = archive
    solid_convex = {"sink": (150, 200, 230), "laptop": (90, 110, 150), "apple": (120, 200, 40)}
    names = {c["id"]: c["name"] for c in doc["categories"]}
    checked = 0
    for ann in doc["annotations"]:
        name = names[ann["category_id"]]
        if name not in solid_convex:
            continue
        flat = ann["segmentation"][0]
        cx, cy = int(np.mean(flat[0::2])), int(np.mean(flat[1::2]))
        file_name = f"{ann['image_id']:012d}.jpg"
        with Image.open(folder / "images" / file_name) as pil:
            pixels = np.asarray(pil, dtype=float)[cy - 1 : cy + 2, cx - 1 : cx + 2]
        observed = pixels.reshape(-1, 3).mean(axis=0)
        expected = np.array(solid_convex[name], dtype=float)
        assert np.all(observed >= 0.85 * expected - 10), (name, observed)
        assert np.all(observed <= 1.15 * expected + 10), (name, observed)
        checked += 1
    assert checked >= 20


# Statistics reproduce the paper's superclasses -----------------------------------


def archive_statistics(doc: dict):
    names = {c["id"]: c["name"] for c in doc["categories"]}
    image_area = {i["id"]: i["width"] * i["height"] for i in doc["images"]}
    annotations = doc["annotations"]
    stats = class_statistics(
        np.array([a["image_id"] for a in annotations]),
        np.array([a["category_id"] for a in annotations]),
        np.array([a["area"] for a in annotations]),
        np.array([image_area[a["image_id"]] for a in annotations], dtype=float),
    )
    return {names[c]: s for c, s in stats.items()}


def test_statistics_give_the_papers_superclasses(archive):
    _, doc = archive
    stats = archive_statistics(doc)
    assert len(stats) == 24
    codes = superclasses(
        {name: s.clutter for name, s in stats.items()},
        {name: s.size for name, s in stats.items()},
    )
    found = {code: {name for name, c in codes.items() if c == code} for code in PAPER_SUPERCLASSES}
    assert found == PAPER_SUPERCLASSES


def test_clutter_and_size_groups_are_well_separated(archive):
    _, doc = archive
    stats = archive_statistics(doc)
    cluttered = PAPER_SUPERCLASSES["CL"] | PAPER_SUPERCLASSES["CS"]
    large = PAPER_SUPERCLASSES["CL"] | PAPER_SUPERCLASSES["UL"]
    # Margins, not just order: the split must not hinge on a lucky seed.
    assert (
        min(stats[n].clutter for n in cluttered)
        > max(stats[n].clutter for n in stats if n not in cluttered) + 0.5
    )
    assert min(stats[n].size for n in large) > 2 * max(
        stats[n].size for n in stats if n not in large
    )
    ratio = stats["dining_table"].size / stats["spoon"].size
    assert 20 <= ratio <= 60
    assert max(stats, key=lambda n: stats[n].size) == "dining_table"
    assert min(stats, key=lambda n: stats[n].size) == "spoon"
    # Every class in at least 3 % of the images.
    assert min(s.image_count for s in stats.values()) >= 0.03 * N_IMAGES


def test_small_image_size_is_valid(tmp_path):
    doc = json.loads(generate_archive(tmp_path, n_images=40, seed=1, image_size=64).read_text())
    assert all((i["width"], i["height"]) == (64, 64) for i in doc["images"])
    assert {a["image_id"] for a in doc["annotations"]} == set(range(1, 41))
    for ann in doc["annotations"]:
        flat = ann["segmentation"][0]
        assert min(flat) >= 0
        assert max(flat) <= 64
    with Image.open(tmp_path / "images" / "000000000040.jpg") as pil:
        assert pil.size == (64, 64)


# Argument validation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_images": 0}, "n_images must be >= 1"),
        ({"n_images": 2.5}, "n_images must be an integer"),
        ({"n_images": True}, "n_images must be an integer"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"image_size": 63}, "image_size must be >= 64"),
        ({"jpeg_quality": 0}, "jpeg_quality must be in 1..100"),
        ({"jpeg_quality": 101}, "jpeg_quality must be in 1..100"),
        ({"progress": 3}, "progress must be callable"),
    ],
)
def test_invalid_arguments_raise(tmp_path, kwargs, message):
    arguments = {"n_images": 2, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_archive(tmp_path / "out", **arguments)
    assert not (tmp_path / "out").exists()  # nothing written before validation


def test_unknown_shape_raises():
    with pytest.raises(ValueError, match="unknown shape 'blob'"):
        unit_polygon("blob")
