from django.apps import AppConfig


class PlatformConfig(AppConfig):
    """The project's wiring: the landing page, the health check and ``manage.py demo``.

    It has no models; the study app is ``studyplatform.studies``.
    """

    name = "studyplatform"
    verbose_name = "Platform"
