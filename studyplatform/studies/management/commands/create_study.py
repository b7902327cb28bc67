"""``manage.py create_study spec.yaml``: validate a study spec and build the study (a draft)."""

from django.core.management.base import BaseCommand, CommandError

from studyplatform.studies.services.assignments import study_pair_capacities
from studyplatform.studies.services.specs import StudySpecError, study_spec_load
from studyplatform.studies.services.studies import study_create_from_spec
from studyplatform.studies.services.task_pairs import TaskPairError


class Command(BaseCommand):
    help = (
        "Create a study from a YAML spec (see fixtures/studies/): its conditions, queries, "
        "questionnaires and task pairs, in status draft. Nothing is written if the spec is wrong."
    )

    def add_arguments(self, parser):
        parser.add_argument("spec", help="Path of the YAML spec.")
        parser.add_argument(
            "--check", action="store_true", help="Validate the spec only; write nothing."
        )

    def handle(self, *args, spec: str, check: bool, **options):
        try:
            normalised = study_spec_load(
                spec if spec.endswith((".yaml", ".yml", ".json")) else _read(spec)
            )
            if check:
                self.stdout.write(f"{spec}: valid ({len(normalised['queries'])} queries)")
                return
            study = study_create_from_spec(spec=normalised)
        except (StudySpecError, TaskPairError) as exc:
            raise CommandError(f"{spec}: {exc}") from None
        conditions = ", ".join(
            f"{c.name} ({c.method or 'no XAI'})" for c in study.conditions.order_by("id")
        )
        classes = study.queries.values("category").distinct().count()
        self.stdout.write(
            self.style.SUCCESS(f"Study {study.slug!r} created (draft): {study.title}")
        )
        self.stdout.write(
            "\n".join(
                [
                    f"  archive:      {study.archive.name} ({study.feature_set})",
                    f"  conditions:   {conditions}",
                    f"  queries:      {study.queries.count()} in {classes} classes",
                    f"  task pairs:   {study.task_pairs.count()}, at least {study.repetitions} "
                    "worker(s) per pair",
                    f"  assignments:  {sum(study_pair_capacities(study=study).values())} needed",
                    f"  questionnaires: {study.questionnaires.count()}",
                ]
            )
        )


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise StudySpecError("", f"cannot read spec file {path}: {exc.strerror}") from None
