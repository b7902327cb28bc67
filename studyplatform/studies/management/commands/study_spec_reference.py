"""``manage.py study_spec_reference``: write the study spec's field reference from the schema."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from studyplatform.studies.spec_reference import study_spec_reference

DEFAULT_PATH = Path(settings.BASE_DIR) / "docs" / "study-spec.md"


class Command(BaseCommand):
    help = (
        "Write the reference of every study spec field (docs/study-spec.md), generated from "
        "the schema; --check only says whether the file is up to date."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", default=str(DEFAULT_PATH), help="Where to write it.")
        parser.add_argument(
            "--check",
            action="store_true",
            help="Write nothing; fail if the file differs from what the schema gives.",
        )

    def handle(self, *args, output: str, check: bool, **options):
        path = Path(output)
        text = study_spec_reference()
        if check:
            current = path.read_text(encoding="utf-8") if path.is_file() else None
            if current != text:
                raise CommandError(
                    f"{path} is out of date with the spec schema; run "
                    "manage.py study_spec_reference"
                )
            self.stdout.write(f"{path} is up to date")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {path}")
