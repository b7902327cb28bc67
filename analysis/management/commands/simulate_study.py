"""``manage.py simulate_study --study S --workers N --seed K``: a dry run with simulated workers."""

from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from analysis.simulation import SimulationError, WorkerModel, study_simulate
from studyplatform.studies.models import Study


class Command(BaseCommand):
    help = (
        "Run simulated workers (an oracle with error rates, a speed and an optional benefit from "
        "explanations) through a live study's real worker pages, in-process."
    )

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="Slug of a live study.")
        parser.add_argument("--workers", type=int, required=True)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--mode", choices=["lab", "mturk"], default="lab")
        parser.add_argument(
            "--export",
            type=Path,
            metavar="DIR",
            help="Then analyse the study and export every format into DIR (export_analysis).",
        )
        parser.add_argument(
            "--permutations", type=int, help="Permutations of the analysis (with --export)."
        )
        defaults = WorkerModel()
        for name, help_text in (
            ("miss_rate", "P(a true positive is marked not relevant)"),
            ("false_mark_rate", "P(a negative is marked relevant)"),
            ("change_rate", "P(a judgement is first given the other way, then corrected)"),
            ("seconds_per_judgement", "median seconds per judgement without explanations"),
            ("xai_miss_reduction", "relative reduction of the miss rate with explanations"),
            ("xai_time_factor", "judgements take this many times longer with explanations"),
            ("likert_mean", "mean questionnaire answer on the 0-1 scale"),
        ):
            parser.add_argument(
                "--" + name.replace("_", "-"),
                type=float,
                default=getattr(defaults, name),
                help=f"{help_text} (default {getattr(defaults, name)})",
            )

    def handle(self, *args, **options):
        study = Study.objects.filter(slug=options["study"]).first()
        if study is None:
            raise CommandError(f"no study with slug {options['study']!r}")
        if study.status != Study.Status.LIVE:
            raise CommandError(
                f"study {study.slug} is {study.status}; simulated workers need it live"
            )
        if options["workers"] < 1:
            raise CommandError(f"--workers must be >= 1, got {options['workers']}")
        names = [f for f in WorkerModel().as_dict() if f in options]
        try:
            model = WorkerModel(**{name: options[name] for name in names})
            report = study_simulate(
                study=study,
                workers=options["workers"],
                seed=options["seed"],
                model=model,
                mode=options["mode"],
            )
        except (ValueError, SimulationError) as exc:
            raise CommandError(str(exc)) from exc
        for reason in report.refused:
            self.stderr.write(self.style.WARNING(f"refused: {reason}"))
        self.stdout.write(
            self.style.SUCCESS(
                f"{report.submitted} of {options['workers']} simulated workers submitted "
                f"({report.judgements} judgements, {report.requests} requests, {report.mode} mode)"
            )
        )
        if options["export"] is not None:
            call_command(
                "export_analysis",
                study=study.slug,
                out=str(options["export"]),
                permutations=options["permutations"],
                stdout=self.stdout,
                stderr=self.stderr,
            )
