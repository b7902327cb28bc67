from django.apps import AppConfig


class StudiesConfig(AppConfig):
    """The study app: studies, conditions, task pairs, assignments and the worker's HIT pages."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "studyplatform.studies"
    label = "studies"
    verbose_name = "Studies"
