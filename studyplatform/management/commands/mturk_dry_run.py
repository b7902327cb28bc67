"""``manage.py mturk_dry_run --study S --workers N``: rehearse a launch on the local endpoint."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from mturk.client import MTurkError
from studyplatform.dry_run import study_dry_run
from studyplatform.studies.models import Study


class Command(BaseCommand):
    help = (
        "Publish a live study to a local MTurk endpoint, have N simulated workers accept and "
        "complete it through the real HIT pages, sync, approve, and print what it would cost."
    )

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="Slug of a live study.")
        parser.add_argument("--workers", type=int, default=10)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--state",
            type=Path,
            help="The endpoint's state file (default: a new one in the data folder).",
        )

    def handle(self, *args, study, workers, seed, state, **options):
        found = Study.objects.filter(slug=study).first()
        if found is None:
            raise CommandError(f"No study {study!r}.")
        if found.status != Study.Status.LIVE:
            raise CommandError(f"Study {study!r} is {found.status}; a dry run needs it live.")
        if workers < 1:
            raise CommandError("--workers must be at least 1.")
        state = state or Path(settings.DATA_DIR) / f"mturk-dry-run-{study}-{seed}.sqlite3"
        try:
            report = study_dry_run(study=found, workers=workers, seed=seed, state=state)
        except MTurkError as exc:
            raise CommandError(str(exc)) from None
        lines = [
            f"local endpoint {report.endpoint}: {report.hits} HITs published",
            f"workers: {report.accepted} accepted on MTurk, {len(report.refused_on_mturk)} "
            f"refused, {report.submitted} submitted here, {report.approved} approved",
            *("sync: " + line for line in report.sync),
            "money that would have been spent (USD): "
            + ", ".join(f"{k} {v}" for k, v in report.money.items()),
        ]
        self.stdout.write("\n".join(lines))
