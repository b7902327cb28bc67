from django.apps import AppConfig


class StudyplatformConfig(AppConfig):
    """The study app: studies, conditions, task pairs, assignments and the worker's HIT pages."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "studyplatform"
    verbose_name = "Studies"
