"""``manage.py power --effect 0.065 --alpha 0.1``: workers needed to detect a gain."""

from django.core.management.base import BaseCommand, CommandError

from analysis.frame import AnalysisError
from analysis.power import PowerModel, power_curve, workers_needed


def _workers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise CommandError(f"--workers {text!r}: expected comma-separated integers") from exc
    if not values:
        raise CommandError("--workers: give at least one number")
    return values


class Command(BaseCommand):
    help = (
        "Estimate, by simulating per-task data sets (analysis.power), the power of the "
        "stratified permutation test to detect a relative XAI gain in a group of classes, and "
        "the number of workers needed for the target power."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--effect", type=float, required=True, help="Relative gain, e.g. 0.065."
        )
        parser.add_argument("--alpha", type=float, default=0.1)
        parser.add_argument("--workers", default="50,100,200,400,800,1600,3200")
        parser.add_argument("--simulations", type=int, default=200)
        parser.add_argument("--permutations", type=int, default=1000)
        parser.add_argument("--target", type=float, default=0.8, help="Target power.")
        parser.add_argument(
            "--classes", type=int, default=24, help="Query classes (half in the group)."
        )
        parser.add_argument("--base-mean", type=float, default=18.0, help="Mean nP without XAI.")
        parser.add_argument("--cv", type=float, default=0.5, help="Task-level variation of nP.")
        parser.add_argument("--class-sd", type=float, default=0.3, help="Log-sd of class means.")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **options):
        try:
            model = PowerModel(
                effect=options["effect"],
                n_classes=options["classes"],
                base_mean=options["base_mean"],
                class_sd=options["class_sd"],
                cv=options["cv"],
            )
            curve = power_curve(
                model,
                _workers(options["workers"]),
                alpha=options["alpha"],
                simulations=options["simulations"],
                n_permutations=options["permutations"],
                random_state=options["seed"],
            )
        except AnalysisError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(curve.round(3).to_string(index=False))
        needed = workers_needed(curve, target=options["target"])
        target = f"{options['target']:.0%} power"
        if needed is None:
            self.stdout.write(
                self.style.WARNING(
                    f"No number of workers tried reaches {target} for a {options['effect']:.1%} gain "
                    f"at alpha {options['alpha']}; try more than {curve['workers'].max()}."
                )
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"{needed} workers reach {target} for a {options['effect']:.1%} gain at alpha "
                    f"{options['alpha']} (of {', '.join(map(str, curve['workers']))})."
                )
            )
