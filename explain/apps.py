from django.apps import AppConfig


def _colorbar_gradient(colormap: str) -> str:
    """``explain.render.colorbar_gradient_css``, imported when a page first needs a bar, so
    that the web process does not load matplotlib at start-up."""
    from explain.render import colorbar_gradient_css

    return colorbar_gradient_css(colormap)


class ExplainConfig(AppConfig):
    """Saliency methods (SBSM, RISE, SAM, ...), precompute tasks and overlays."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "explain"
    verbose_name = "Explanations"

    def ready(self) -> None:
        # Imported here: the schema module imports the study models, loaded only by now.
        from explain.registry import get_method, method_from_config
        from explain.spec import OverlaySpec
        from studyplatform.studies.hooks import colorbar_gradient_register, overlay_keys_register
        from studyplatform.studies.spec_schema import (
            condition_methods_register,
            spec_block_register,
        )

        from .selectors import saliency_overlay_keys

        condition_methods_register(
            check_name=get_method,
            check_config=lambda method, config: method_from_config({"method": method, **config}),
        )
        # The HIT pages of the studies core show the overlays this app stores.
        overlay_keys_register(saliency_overlay_keys)
        # ... and the colour bar saying what their colours mean.
        colorbar_gradient_register(_colorbar_gradient)
        spec_block_register(
            name="overlay",
            model=OverlaySpec,
            description="How saliency maps are drawn over the results (explain/spec.py).",
        )
