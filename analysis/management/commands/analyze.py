import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from analysis.exports import write_analysis
from analysis.frame import AnalysisError, read_tasks_csv
from analysis.likert import read_likert_csv
from analysis.pipeline import analysis_from_tasks
from analysis.superclasses import PAPER_SUPERCLASSES


def _superclasses(value: str | None):
    if value is None:
        return None
    if value == "paper":
        return PAPER_SUPERCLASSES
    try:
        return json.loads(Path(value).read_text())
    except (OSError, ValueError) as exc:
        raise CommandError(f"--superclasses {value}: cannot read a JSON object ({exc})") from exc


def _conditions(values: list[str] | None) -> dict[str, bool] | None:
    if not values:
        return None
    out = {}
    for value in values:
        name, _, kind = value.partition("=")
        if kind not in ("xai", "none") or not name:
            raise CommandError(f"--condition {value!r}: expected NAME=xai or NAME=none")
        out[name] = kind == "xai"
    return out


class Command(BaseCommand):
    help = (
        "Analyse a per-task CSV in the export's format (seed 001 Tables 1 and 2, stratified "
        "permutation tests, Likert summaries, figures) and write CSV, XLSX, JSON, LaTeX and "
        "figures to a folder."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from-csv", type=Path, required=True, help="Per-task CSV.")
        parser.add_argument("--likert", type=Path, help="Likert responses CSV (optional).")
        parser.add_argument("--out", type=Path, required=True, help="Folder to write.")
        parser.add_argument(
            "--superclasses",
            help="'paper' for seed 001's lists, or a JSON file {CL: [...], ...} or "
            "{cluttered: [...], large: [...]}; default: the CSV's superclass or clutter/size "
            "columns.",
        )
        parser.add_argument(
            "--condition",
            action="append",
            metavar="NAME=xai|none",
            help="A known condition (repeatable); other names in the CSV are then errors.",
        )
        parser.add_argument("--permutations", type=int, default=10_000)
        parser.add_argument(
            "--alternative", choices=["greater", "less", "two-sided"], default="greater"
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the permutations.")
        parser.add_argument("--salt", help="Salt of the worker pseudonyms (default: random).")
        parser.add_argument(
            "--keep-worker-ids", action="store_true", help="Do not pseudonymise worker ids."
        )
        parser.add_argument("--no-figures", action="store_true")

    def handle(self, *args, **options):
        try:
            tasks = read_tasks_csv(options["from_csv"])
            responses = read_likert_csv(options["likert"]) if options["likert"] else None
            result = analysis_from_tasks(
                tasks,
                responses=responses,
                superclasses=_superclasses(options["superclasses"]),
                conditions=_conditions(options["condition"]),
                n_permutations=options["permutations"],
                alternative=options["alternative"],
                random_state=options["seed"],
            )
            written = write_analysis(
                result,
                options["out"],
                salt=options["salt"],
                keep_worker_ids=options["keep_worker_ids"],
                figures=not options["no_figures"],
            )
        except AnalysisError as exc:
            raise CommandError(str(exc)) from exc
        for note in result.notes:
            self.stderr.write(self.style.WARNING(f"note: {note}"))
        self.stdout.write("Table 1\n" + result.table1.frame.round(2).to_string(na_rep=""))
        self.stdout.write("Table 2\n" + result.table2.frame.round(3).to_string(na_rep=""))
        tests = result.tests[["attribute", "group", "gain", "p_value"]]
        self.stdout.write("Permutation tests\n" + tests.to_string(index=False, na_rep="-"))
        self.stdout.write(
            self.style.SUCCESS(
                f"Analysed {len(result.tasks)} tasks; wrote {len(written)} files to {options['out']}"
            )
        )
