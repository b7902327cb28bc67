from django.apps import AppConfig


class ExplainConfig(AppConfig):
    """Saliency methods (SBSM, RISE, SAM, ...), precompute tasks and overlays."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "explain"
    verbose_name = "Explanations"
