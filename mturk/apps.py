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

        # No receiver of ``assignment_started``: the worker id of a new assignment comes from a
        # URL, and the "participated" qualification goes to the worker MTurk lists when the
        # assignments are synced (``assignments_sync``), never to an id nobody verified.
