from django.apps import AppConfig


class OutboxConfig(AppConfig):
    """Outbox entries: tasks that must run, written in the transaction that needs them."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "studyplatform.outbox"
    label = "outbox"
    verbose_name = "Outbox"

    def ready(self) -> None:
        from celery.signals import task_success

        from .services import outbox_mark_done_on_success

        task_success.connect(outbox_mark_done_on_success, weak=False, dispatch_uid="outbox-done")
