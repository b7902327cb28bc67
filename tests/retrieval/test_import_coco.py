"""`import_coco`: streaming, validating, transactional, idempotent COCO import."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from retrieval.models import Annotation, Archive, ArchiveImport, Category, Image
from retrieval.selectors import category_superclasses

pytestmark = pytest.mark.django_db

PAPER_SUPERCLASSES = {
    "CL": {"dining_table", "microwave", "oven", "sink", "toaster", "vase"},
    "CS": {"book", "chair", "fork", "knife", "spoon", "wine_glass"},
    "UL": {"cake", "keyboard", "laptop", "sandwich", "tv", "umbrella"},
    "US": {"apple", "backpack", "carrot", "clock", "handbag", "orange"},
}


def import_coco(archive: str, instances: Path, image_dir: Path, *extra: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command(
        "import_coco", "--archive", archive, str(instances), str(image_dir), *extra, stdout=out
    )
    return out.getvalue()


def table_snapshot() -> dict[str, list]:
    """Every row of the archive tables, to compare before/after."""
    return {
        "archives": list(Archive.objects.values_list("pk", "name")),
        "categories": list(
            Category.objects.order_by("pk").values_list(
                "pk", "coco_id", "name", "instance_count", "image_count", "clutter", "size"
            )
        ),
        "images": list(
            Image.objects.order_by("pk").values_list("pk", "coco_id", "file_name", "width")
        ),
        "annotations": list(
            Annotation.objects.order_by("pk").values_list(
                "pk", "coco_id", "image_id", "category_id", "area"
            )
        ),
        "imports": list(ArchiveImport.objects.values_list("pk", "sha256")),
    }


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def small_coco(synthetic_archive_small) -> dict:
    return json.loads((synthetic_archive_small / "instances.json").read_text())


def test_synthetic_archive_of_2000_images_imports_with_the_papers_superclasses(
    synthetic_archive_2000,
):
    data = json.loads((synthetic_archive_2000 / "instances.json").read_text())

    output = import_coco(
        "synth", synthetic_archive_2000 / "instances.json", synthetic_archive_2000 / "images"
    )

    archive = Archive.objects.get(name="synth")
    assert Image.objects.filter(archive=archive).count() == len(data["images"]) == 2000
    assert Annotation.objects.filter(archive=archive).count() == len(data["annotations"])
    assert Category.objects.filter(archive=archive).count() == 24
    assert "Imported: archive synth" in output
    record = archive.imports.get()
    assert (record.image_count, record.annotation_count) == (2000, len(data["annotations"]))
    # Statistics were computed in the same import.
    assert archive.statistics_updated_at is not None
    assert not Category.objects.filter(archive=archive, clutter__isnull=True).exists()
    codes = category_superclasses(archive=archive)
    found = {code: {name for name, c in codes.items() if c == code} for code in PAPER_SUPERCLASSES}
    assert found == PAPER_SUPERCLASSES
    # Image rows point at real files.
    image = Image.objects.filter(archive=archive).select_related("directory").first()
    assert (Path(image.directory.path) / image.file_name).is_file()


def test_importing_the_same_file_again_changes_nothing(synthetic_archive_small):
    instances = synthetic_archive_small / "instances.json"
    import_coco("synth", instances, synthetic_archive_small / "images")
    before = table_snapshot()

    output = import_coco("synth", instances, synthetic_archive_small / "images")

    assert "Already imported" in output
    assert table_snapshot() == before


def test_a_changed_file_updates_rows_in_place_without_duplicates(
    tmp_path, synthetic_archive_small, small_coco
):
    import_coco(
        "synth", synthetic_archive_small / "instances.json", synthetic_archive_small / "images"
    )
    n_annotations = Annotation.objects.count()
    changed = copy.deepcopy(small_coco)
    changed["annotations"][0]["area"] = 1234.5
    changed["images"][0]["width"] = 161

    import_coco(
        "synth", write_json(tmp_path / "changed.json", changed), synthetic_archive_small / "images"
    )

    assert Annotation.objects.count() == n_annotations
    assert Annotation.objects.get(coco_id=changed["annotations"][0]["id"]).area == 1234.5
    assert Image.objects.get(coco_id=changed["images"][0]["id"]).width == 161
    assert ArchiveImport.objects.count() == 2


def test_two_files_fill_one_archive_like_train_and_val(
    tmp_path, synthetic_archive_small, small_coco
):
    train, val = copy.deepcopy(small_coco), copy.deepcopy(small_coco)
    train_ids = {image["id"] for image in small_coco["images"][:80]}
    train["images"] = [i for i in small_coco["images"] if i["id"] in train_ids]
    train["annotations"] = [a for a in small_coco["annotations"] if a["image_id"] in train_ids]
    val["images"] = [i for i in small_coco["images"] if i["id"] not in train_ids]
    val["annotations"] = [a for a in small_coco["annotations"] if a["image_id"] not in train_ids]
    images = synthetic_archive_small / "images"

    import_coco("synth", write_json(tmp_path / "train.json", train), images)
    import_coco("synth", write_json(tmp_path / "val.json", val), images)

    assert Image.objects.count() == len(small_coco["images"])
    assert Annotation.objects.count() == len(small_coco["annotations"])
    oven_id = next(c["id"] for c in small_coco["categories"] if c["name"] == "oven")
    assert Category.objects.get(name="oven").instance_count == sum(
        1 for a in small_coco["annotations"] if a["category_id"] == oven_id
    )


def test_a_truncated_file_fails_clearly_and_writes_nothing(tmp_path, synthetic_archive_small):
    whole = (synthetic_archive_small / "instances.json").read_bytes()
    truncated = tmp_path / "instances_truncated.json"
    truncated.write_bytes(whole[: len(whole) * 2 // 3])

    with pytest.raises(CommandError) as error:
        import_coco("synth", truncated, synthetic_archive_small / "images")

    assert "instances_truncated.json" in str(error.value)
    assert "truncated or corrupt" in str(error.value)
    assert not Archive.objects.exists()
    assert not Image.objects.exists()


def _unknown_category(data):
    data["annotations"][5]["category_id"] = 999
    return "annotations[5]", "unknown category_id 999"


def _missing_key(data):
    del data["images"][3]["file_name"]
    return "images[3]", "missing key(s) file_name"


def _duplicate_image(data):
    data["images"][9]["id"] = data["images"][2]["id"]
    return "images[9]", f"duplicate image id {data['images'][2]['id']}"


def _unknown_image(data):
    data["annotations"][-1]["image_id"] = 10**9
    return f"annotations[{len(data['annotations']) - 1}]", "image_id 1000000000 is not among"


def _bad_bbox(data):
    data["annotations"][0]["bbox"] = [1, 2, 3]
    return "annotations[0]", "bbox [1, 2, 3] is not 4 finite numbers"


def _duplicate_annotation(data):
    data["annotations"][7]["id"] = data["annotations"][6]["id"]
    return "annotations[7]", "duplicate annotation id"


def _file_outside_the_folder(data):
    data["images"][1]["file_name"] = "../../etc/passwd"
    return "images[1]", "must be a relative path inside the image folder"


def _absolute_file_name(data):
    data["images"][2]["file_name"] = "/etc/passwd"
    return "images[2]", "must be a relative path inside the image folder"


def _no_categories(data):
    del data["categories"]
    return "", "no 'categories'"


@pytest.mark.parametrize(
    "corrupt",
    [
        _unknown_category,
        _missing_key,
        _duplicate_image,
        _unknown_image,
        _bad_bbox,
        _duplicate_annotation,
        _file_outside_the_folder,
        _absolute_file_name,
        _no_categories,
    ],
)
def test_an_inconsistent_file_names_the_record_and_writes_nothing(
    tmp_path, synthetic_archive_small, small_coco, corrupt
):
    data = copy.deepcopy(small_coco)
    where, reason = corrupt(data)
    bad = write_json(tmp_path / "instances_bad.json", data)

    with pytest.raises(CommandError) as error:
        import_coco("synth", bad, synthetic_archive_small / "images")

    message = str(error.value)
    assert message.startswith("Nothing was imported: instances_bad.json: ")
    assert where in message
    assert reason in message
    # Categories and images are written before annotations are read: all rolled back.
    assert table_snapshot() == {
        "archives": [],
        "categories": [],
        "images": [],
        "annotations": [],
        "imports": [],
    }


def test_an_error_in_a_second_file_keeps_the_first_import_intact(
    tmp_path, synthetic_archive_small, small_coco
):
    import_coco(
        "synth", synthetic_archive_small / "instances.json", synthetic_archive_small / "images"
    )
    before = table_snapshot()
    data = copy.deepcopy(small_coco)
    data["annotations"][0]["area"] = 5.0  # a change that would be written ...
    data["annotations"][-1]["category_id"] = 999  # ... before this error is found
    with pytest.raises(CommandError, match="unknown category_id 999"):
        import_coco(
            "synth", write_json(tmp_path / "bad.json", data), synthetic_archive_small / "images"
        )

    assert table_snapshot() == before


def test_missing_image_files_fail_only_with_check_files(tmp_path, synthetic_archive_small):
    images = tmp_path / "images"
    images.mkdir()
    for picture in sorted((synthetic_archive_small / "images").iterdir())[:-1]:
        (images / picture.name).symlink_to(picture)
    missing = sorted((synthetic_archive_small / "images").iterdir())[-1].name

    with pytest.raises(CommandError, match=rf"image file .*{missing} does not exist"):
        import_coco("synth", synthetic_archive_small / "instances.json", images, "--check-files")
    assert not Image.objects.exists()

    import_coco("synth", synthetic_archive_small / "instances.json", images)
    assert Image.objects.count() == 120


def test_a_category_that_changes_name_between_files_is_refused(
    tmp_path, synthetic_archive_small, small_coco
):
    import_coco(
        "synth", synthetic_archive_small / "instances.json", synthetic_archive_small / "images"
    )
    data = copy.deepcopy(small_coco)
    data["categories"][0]["name"] = "table"

    with pytest.raises(CommandError, match="conflicts with the archive's category"):
        import_coco(
            "synth", write_json(tmp_path / "renamed.json", data), synthetic_archive_small / "images"
        )
    assert not Category.objects.filter(name="table").exists()


def test_a_bad_archive_name_is_refused(synthetic_archive_small):
    with pytest.raises(CommandError, match="Nothing was imported"):
        import_coco(
            "not a slug!",
            synthetic_archive_small / "instances.json",
            synthetic_archive_small / "images",
        )
    assert not Archive.objects.exists()


def test_a_missing_file_or_folder_is_named(tmp_path, synthetic_archive_small):
    with pytest.raises(CommandError, match=r"nope\.json: no such file"):
        import_coco("synth", tmp_path / "nope.json", synthetic_archive_small / "images")
    with pytest.raises(CommandError, match="image folder does not exist"):
        import_coco("synth", synthetic_archive_small / "instances.json", tmp_path / "nowhere")


def test_a_database_error_mid_import_stops_the_parser_and_rolls_back(
    monkeypatch, synthetic_archive_small
):
    import threading

    from retrieval.services import archives as services

    calls = {"n": 0}
    real_upsert = services._upsert

    def failing_upsert(model, columns, rows):
        calls["n"] += 1
        if model is Annotation:
            raise RuntimeError("disk full")
        real_upsert(model, columns, rows)

    monkeypatch.setattr(services, "_upsert", failing_upsert)
    with pytest.raises(RuntimeError, match="disk full"):
        services.archive_import_coco(
            archive_name="synth",
            instances_path=synthetic_archive_small / "instances.json",
            image_dir=synthetic_archive_small / "images",
            batch_size=10,
        )

    assert calls["n"] > 1  # images were written before the failure ...
    assert table_snapshot()["images"] == []  # ... and rolled back with it
    assert not [t for t in threading.enumerate() if t.name == "import-parser"]
