import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from explain.selectors import saliency_plan, saliency_progress_detail
from explain.services import saliency_precompute_study
from studyplatform.studies.models import Study


class Command(BaseCommand):
    help = (
        "Precompute the saliency maps of a study: every candidate-pool image of every query used "
        "under a with-XAI condition, then the overlays. Maps that exist are skipped, so a rerun "
        "computes nothing and an interrupted run resumes. Without --sync the work is queued on "
        "the Celery gpu queue and this command follows its progress."
    )

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="The study's slug.")
        parser.add_argument(
            "--sync",
            action="store_true",
            help="Compute here, chunk by chunk (no broker needed); Ctrl-C keeps finished maps.",
        )
        parser.add_argument(
            "--poll", type=float, default=2.0, help="Seconds between progress checks (queued)."
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=0.0,
            help="Stop following a queued run after this many seconds (0: until done).",
        )

    def handle(self, *args, study, sync, poll, timeout, **options):
        try:
            study_row = Study.objects.select_related("feature_set").get(slug=study)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {study!r}") from None
        if poll <= 0:
            raise CommandError(f"--poll must be > 0, got {poll}")
        quiet = options["verbosity"] == 0
        bar = tqdm(unit="map", desc=study_row.slug, disable=quiet, file=self.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            report = saliency_precompute_study(
                study=study_row, sync=sync, progress=progress if sync else None
            )
            if not sync:
                progress(report.existing, report.total)
                state = self._follow(study_row, progress, poll=poll, timeout=timeout)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            bar.close()
            done = saliency_progress_detail(study=study_row)
            raise CommandError(
                f"interrupted: {done.done} of {done.total} maps exist; run the command again to "
                "finish the rest"
            ) from None
        finally:
            bar.close()
        if sync:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Study {study_row.slug}: {report.total} maps in {report.groups} method "
                    f"config(s), queries from {report.queries_from}; {report.existing} existed, "
                    f"{report.computed} computed in {report.chunks} result-image chunks, "
                    f"{report.overlays} overlays rendered"
                )
            )
            return
        message = (
            f"Study {study_row.slug}: {report.missing} of {report.total} maps queued in "
            f"{report.chunks} result-image chunks; now {state.done} maps and {state.rendered} "
            f"overlays of {state.total}"
        )
        if state.rendered < state.total:
            self.stdout.write(self.style.WARNING(message + " (not finished: run again to follow)"))
        else:
            self.stdout.write(self.style.SUCCESS(message))

    @staticmethod
    def _follow(study, progress, *, poll: float, timeout: float):
        """Poll the selector until every map and overlay exists, or ``timeout`` seconds."""
        started = time.monotonic()
        plan = saliency_plan(study=study)  # one search per query: not on every poll
        while True:
            state = saliency_progress_detail(study=study, plan=plan)
            progress(state.done, state.total)
            if state.rendered >= state.total:
                return state
            if timeout and time.monotonic() - started >= timeout:
                return state
            time.sleep(poll)
