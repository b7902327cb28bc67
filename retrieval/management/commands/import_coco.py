from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from retrieval.coco import CocoFormatError
from retrieval.services import archive_import_coco


class Command(BaseCommand):
    help = (
        "Import a COCO-format instances file (e.g. instances_train2017.json) and its image folder "
        "into an archive. Streams the file, validates every record, writes in one transaction; "
        "importing the same file again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--archive", required=True, help="Archive name (a slug); created if new."
        )
        parser.add_argument("instances", type=Path, help="COCO instances JSON file.")
        parser.add_argument("image_dir", type=Path, help="Folder holding the images' file_name.")
        parser.add_argument(
            "--check-files", action="store_true", help="Fail if an image file is missing."
        )

    def handle(
        self, *args, archive: str, instances: Path, image_dir: Path, check_files: bool, **options
    ):
        try:
            result = archive_import_coco(
                archive_name=archive,
                instances_path=instances,
                image_dir=image_dir,
                check_files=check_files,
                log=self.stdout.write,
            )
        except (CocoFormatError, ValidationError) as exc:
            raise CommandError(f"Nothing was imported: {exc}") from exc
        record = result.record
        verb = "Already imported" if result.skipped else "Imported"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb}: archive {result.archive.name}: {record.category_count} categories, "
                f"{record.image_count} images, {record.annotation_count} annotations from {record.source_path}"
            )
        )
