"""``manage.py export_analysis --study S --out DIR``: a study's analysis as files."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from analysis.frame import AnalysisError
from analysis.services import EXPORT_FORMATS, analysis_export, analysis_run
from studyplatform.studies.models import Study


class Command(BaseCommand):
    help = (
        "Export a study's analysis (per-task data, Tables 1 and 2, permutation tests, Likert "
        "summaries, figures) as CSV, one XLSX workbook, JSON, LaTeX and PNG/SVG figures."
    )

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="Study slug.")
        parser.add_argument("--out", type=Path, required=True, help="Folder to write.")
        parser.add_argument(
            "--format",
            action="append",
            choices=list(EXPORT_FORMATS),
            dest="formats",
            help="Repeatable; default: every format.",
        )
        parser.add_argument(
            "--keep-worker-ids",
            action="store_true",
            help="Write worker ids as they are (default: salted pseudonyms).",
        )
        parser.add_argument("--permutations", type=int, help="Default: the spec's, or 10,000.")
        parser.add_argument("--seed", type=int, help="Seed of the permutations.")

    def handle(self, *args, **options):
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"no study with slug {options['study']!r}")
        pseudonymise = not options["keep_worker_ids"]
        try:
            result = analysis_run(
                study=study,
                pseudonymise=pseudonymise,
                use_cache=False,
                n_permutations=options["permutations"],
                random_state=options["seed"],
            )
            written = analysis_export(
                study=study,
                out_dir=options["out"],
                formats=options["formats"] or list(EXPORT_FORMATS),
                pseudonymise=pseudonymise,
                result=result,
            )
        except AnalysisError as exc:
            raise CommandError(str(exc)) from exc
        for note in result.notes:
            self.stderr.write(self.style.WARNING(f"note: {note}"))
        self.stdout.write(result.table2.frame.round(3).to_string())
        self.stdout.write(
            self.style.SUCCESS(
                f"Analysed {len(result.tasks)} tasks of {study.slug}; wrote {len(written)} files "
                f"to {options['out']}"
            )
        )
