"""``manage.py mturk <publish|sync|approve|reject|bonus|expire|extend|notify|balance>``.

Every subcommand takes ``--environment sandbox|production|local`` (default: where the study
was published, else ``MTURK_ENVIRONMENT``) and ``--endpoint-url`` for the local endpoint.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mturk.client import ENVIRONMENTS, MTurkError, mturk_client
from mturk.models import AssignmentRecord
from studyplatform.studies.models import Assignment, Study


class Command(BaseCommand):
    help = "Publish, sync, pay and manage a study's MTurk HITs."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)

        def add(name: str, help_text: str, *, study: bool = True) -> CommandParser:
            p = sub.add_parser(name, help=help_text)
            p.add_argument("--environment", choices=ENVIRONMENTS)
            p.add_argument("--endpoint-url", help="URL of the local endpoint")
            if study:
                p.add_argument("--study", required=True, help="study slug")
            return p

        p = add("publish", "show the cost and balance, then publish (with --yes)")
        p.add_argument("--yes", action="store_true", help="confirm: spend the money shown")
        add("sync", "list assignments on MTurk and reconcile with the platform")
        p = add("approve", "approve submitted assignments complete on the platform")
        p.add_argument("--assignment", help="one MTurk assignment id (default: all complete)")
        p.add_argument("--feedback", default="")
        p.add_argument("--force", action="store_true", help="approve even if incomplete here")
        p = add("reject", "reject one submitted assignment", study=False)
        p.add_argument("--assignment", required=True)
        p.add_argument("--reason", required=True)
        p = add("bonus", "pay a bonus once per (worker, assignment, reason)", study=False)
        p.add_argument("--worker", required=True)
        p.add_argument("--assignment", required=True)
        p.add_argument("--amount", required=True, help="dollars, e.g. 0.50")
        p.add_argument("--reason", required=True)
        add("expire", "expire every HIT of the study now")
        p = add("extend", "add assignments (in HITs under 10) and/or listing time")
        p.add_argument("--assignments", type=int, default=0)
        p.add_argument("--hours", type=int, default=0)
        p = add("notify", "message the study's workers (or --worker ...), 100 per call")
        p.add_argument("--worker", action="append", default=[])
        p.add_argument("--subject", required=True)
        p.add_argument("--message", required=True)
        add("balance", "print the account balance", study=False)

    def handle(self, *args, **options) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except MTurkError as exc:
            raise CommandError(str(exc)) from exc

    # --- helpers ------------------------------------------------------------------------------
    def _study(self, options) -> Study:
        try:
            return Study.objects.get(slug=options["study"])
        except Study.DoesNotExist:
            raise CommandError(f"No study with slug {options['study']!r}.") from None

    def _client(self, options, study: Study | None = None):
        from mturk.services import study_client

        if study is not None:
            return study_client(
                study=study,
                environment=options.get("environment"),
                endpoint_url=options.get("endpoint_url"),
            )
        return mturk_client(
            environment=options.get("environment"), endpoint_url=options.get("endpoint_url")
        )

    def _study_of_assignment(self, assignment_id: str) -> Study:
        record = AssignmentRecord.objects.filter(assignment_id=assignment_id).first()
        if record is None:
            raise CommandError(f"Assignment {assignment_id} is unknown: run `mturk sync` first.")
        return record.hit.study

    def _print(self, lines) -> None:
        for line in lines:
            self.stdout.write(line)

    # --- subcommands --------------------------------------------------------------------------
    def _publish(self, options) -> None:
        from mturk.services import PublishNotConfirmed, hit_publish

        study = self._study(options)
        client = self._client(options, study)
        try:
            result = hit_publish(study=study, client=client, confirm=options["yes"])
        except PublishNotConfirmed as exc:
            self._print(exc.plan.lines())
            raise CommandError("Not published: run again with --yes to confirm.") from None
        self._print(result.plan.lines())
        self.stdout.write(f"created {result.created} HITs; the study has {len(result.hits)}:")
        for hit in result.hits:
            self.stdout.write(f"  {hit.hit_id}  {hit.max_assignments} assignments")

    def _sync(self, options) -> None:
        from mturk.services import assignments_sync

        study = self._study(options)
        self._print(assignments_sync(study=study, client=self._client(options, study)).lines())

    def _approve(self, options) -> None:
        from mturk.services import assignment_approve

        study = self._study(options)
        client = self._client(options, study)
        if options["assignment"]:
            ids = [options["assignment"]]
        else:
            complete = Assignment.objects.filter(
                study=study, status=Assignment.Status.SUBMITTED
            ).values_list("mturk_assignment_id", flat=True)
            ids = list(
                AssignmentRecord.objects.filter(
                    hit__study=study,
                    status=AssignmentRecord.Status.SUBMITTED,
                    assignment_id__in=list(complete),
                ).values_list("assignment_id", flat=True)
            )
        for assignment_id in ids:
            assignment_approve(
                mturk_assignment_id=assignment_id,
                client=client,
                feedback=options["feedback"],
                force=options["force"],
            )
            self.stdout.write(f"approved {assignment_id}")
        self.stdout.write(f"{len(ids)} approved")

    def _reject(self, options) -> None:
        from mturk.services import assignment_reject

        study = self._study_of_assignment(options["assignment"])
        assignment_reject(
            mturk_assignment_id=options["assignment"],
            client=self._client(options, study),
            reason=options["reason"],
        )
        self.stdout.write(f"rejected {options['assignment']}")

    def _bonus(self, options) -> None:
        from mturk.services import bonus_send

        study = self._study_of_assignment(options["assignment"])
        bonus = bonus_send(
            worker_id=options["worker"],
            mturk_assignment_id=options["assignment"],
            amount=options["amount"],
            reason=options["reason"],
            client=self._client(options, study),
        )
        self.stdout.write(f"bonus ${bonus.amount} to {bonus.worker_id}: {bonus.status}")

    def _expire(self, options) -> None:
        from mturk.services import hit_expire

        study = self._study(options)
        self.stdout.write(
            f"expired {hit_expire(study=study, client=self._client(options, study))} HITs"
        )

    def _extend(self, options) -> None:
        from mturk.services import hit_extend

        study = self._study(options)
        result = hit_extend(
            study=study,
            client=self._client(options, study),
            assignments=options["assignments"],
            seconds=3600 * options["hours"],
        )
        self._print(f"{key}: {value}" for key, value in result.items())

    def _notify(self, options) -> None:
        from mturk.services import workers_notify

        study = self._study(options)
        workers = options["worker"] or list(
            AssignmentRecord.objects.filter(hit__study=study)
            .values_list("worker_id", flat=True)
            .distinct()
        )
        failures = workers_notify(
            worker_ids=workers,
            subject=options["subject"],
            message=options["message"],
            client=self._client(options, study),
        )
        self.stdout.write(f"notified {len(workers) - len(failures)} of {len(workers)} workers")
        for failure in failures:
            self.stdout.write(f"  {failure['WorkerId']}: {failure['NotifyWorkersFailureMessage']}")

    def _balance(self, options) -> None:
        from mturk.services import account_balance

        self.stdout.write(f"${account_balance(client=self._client(options))}")
