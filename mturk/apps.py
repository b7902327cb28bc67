from django.apps import AppConfig


class MturkConfig(AppConfig):
    """Publishing HITs, syncing and paying assignments, blocking repeat workers."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "mturk"
    verbose_name = "Mechanical Turk"
