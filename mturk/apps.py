from django.apps import AppConfig


class MturkConfig(AppConfig):
    """Publishing HITs, syncing and paying assignments, blocking repeat workers."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "mturk"
    verbose_name = "Mechanical Turk"

    def ready(self) -> None:
        # Imported here: the schema module imports the study models, loaded only by now.
        from mturk.spec import MTurkSpec
        from studyplatform.studies.spec_schema import spec_block_register

        spec_block_register(
            name="mturk",
            model=MTurkSpec,
            description="The HIT settings (mturk/spec.py); left out for a lab-only study.",
        )

        # Imported here, not lazily at the first assignment: a broken import stops start-up.
        from studyplatform.studies.models import Assignment
        from studyplatform.studies.signals import assignment_started

        from .receivers import participation_grant_on_start

        assignment_started.connect(
            participation_grant_on_start,
            sender=Assignment,
            dispatch_uid="mturk.participation_grant_on_start",
        )
