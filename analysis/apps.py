from django.apps import AppConfig


class AnalysisConfig(AppConfig):
    """nP / nA / T metrics, Tables 1 and 2, permutation tests, figures and exports."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "analysis"
    verbose_name = "Analysis"

    def ready(self) -> None:
        # Imported here: the schema module imports the study models, loaded only by now.
        from analysis.spec import AnalysisSpec
        from studyplatform.studies.spec_schema import spec_block_register

        spec_block_register(
            name="analysis",
            model=AnalysisSpec,
            description="Options of the analysis (analysis/spec.py); only the fields given "
            "are kept.",
            only_given=True,
        )
