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
        from studyplatform.studies.hooks import (
            colorbar_gradient_register,
            overlay_keys_register,
            round_maps_register,
        )
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
        # Its refine rounds get their missing maps from this app, on the gpu worker.
        round_maps_register(_round_maps)


def _round_maps(*, study, condition, query_image_id: int, result_image_ids: list[int]) -> list[int]:
    """The missing maps of a refine round (``explain.services.rounds``); imported when a round
    is computed, so processes that never compute one never load torch for it."""
    from retrieval.models import Image

    from .selectors import condition_method_config
    from .services.rounds import saliency_maps_for_results

    return saliency_maps_for_results(
        feature_set=study.feature_set,
        query=Image.objects.get(pk=query_image_id),
        result_ids=result_image_ids,
        method_config=condition_method_config(condition),
    )
