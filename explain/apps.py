from django.apps import AppConfig


class ExplainConfig(AppConfig):
    """Saliency methods (SBSM, RISE, SAM, ...), precompute tasks and overlays."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "explain"
    verbose_name = "Explanations"

    def ready(self) -> None:
        # Imported here: the schema module imports the study models, loaded only by now.
        from explain.registry import get_method, method_from_config
        from studyplatform.studies.hooks import overlay_keys_register
        from studyplatform.studies.spec_schema import condition_methods_register

        from .selectors import saliency_overlay_keys

        condition_methods_register(
            check_name=get_method,
            check_config=lambda method, config: method_from_config({"method": method, **config}),
        )
        # The HIT pages of the studies core show the overlays this app stores.
        overlay_keys_register(saliency_overlay_keys)
