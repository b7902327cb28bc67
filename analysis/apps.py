from django.apps import AppConfig


class AnalysisConfig(AppConfig):
    """nP / nA / T metrics, Tables 1 and 2, permutation tests, figures and exports."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "analysis"
    verbose_name = "Analysis"
