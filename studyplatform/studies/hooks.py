"""What the studies core uses but does not implement: filled in by the apps above it.

The core never imports explain, mturk or analysis (see the README's layers). Where a HIT page
needs something one of them computes, the core reads it through a hook here, and that app
registers its implementation in ``AppConfig.ready()``; a hook nobody registered gives the
documented fallback, a broken implementation module stops the process at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Condition, Study

# (study, condition, query image id, result image ids) -> {result image id: storage key of its
# saliency overlay, or None}; raises ValueError when the condition's method config is invalid.
OverlayKeys = Callable[..., dict[int, "str | None"]]

_overlay_keys: OverlayKeys | None = None


def overlay_keys_register(function: OverlayKeys) -> None:
    """Make ``function(*, study, condition, query_image_id, result_image_ids)`` the source of
    the overlays shown with a with-XAI task's results (the explain app registers its
    selector). Registering the same function again is harmless; a second one is refused."""
    global _overlay_keys
    if _overlay_keys is not None and _overlay_keys is not function:
        raise RuntimeError(f"overlay keys already come from {_overlay_keys!r}")
    _overlay_keys = function


def overlay_keys_lookup(
    *, study: Study, condition: Condition, query_image_id: int, result_image_ids: list[int]
) -> dict[int, str | None]:
    """The registered source's answer, or every result without an overlay when no app that
    computes saliency maps is installed."""
    if _overlay_keys is None:
        return dict.fromkeys(result_image_ids)
    return _overlay_keys(
        study=study,
        condition=condition,
        query_image_id=query_image_id,
        result_image_ids=result_image_ids,
    )


# colormap name -> CSS linear-gradient from its low (cool) to its high (warm) colour; raises
# ValueError for an unknown colormap.
ColorbarGradient = Callable[[str], str]

_colorbar_gradient: ColorbarGradient | None = None


def colorbar_gradient_register(function: ColorbarGradient) -> None:
    """Make ``function(colormap)`` the source of the colour bar drawn beside the overlays (the
    explain app registers ``explain.render.colorbar_gradient_css``); a second one is refused."""
    global _colorbar_gradient
    if _colorbar_gradient is not None and _colorbar_gradient is not function:
        raise RuntimeError(f"colour bars already come from {_colorbar_gradient!r}")
    _colorbar_gradient = function


def colorbar_gradient_lookup(colormap: str) -> str | None:
    """The registered source's gradient for ``colormap``, or None (no bar) when no app that
    draws saliency maps is installed."""
    if _colorbar_gradient is None:
        return None
    return _colorbar_gradient(colormap)


# (study, condition, query image id, result image ids) -> result image ids whose maps were
# computed by this call; computes every missing map (and overlay) of those results.
RoundMaps = Callable[..., list[int]]

_round_maps: RoundMaps | None = None


def round_maps_register(function: RoundMaps) -> None:
    """Make ``function(*, study, condition, query_image_id, result_image_ids)`` compute the
    missing saliency maps of a refine round's results (the explain app registers its service;
    it runs on the gpu worker that ranks the round). Same rules as
    :func:`overlay_keys_register`."""
    global _round_maps
    if _round_maps is not None and _round_maps is not function:
        raise RuntimeError(f"round maps already come from {_round_maps!r}")
    _round_maps = function


def round_maps_compute(
    *, study: Study, condition: Condition, query_image_id: int, result_image_ids: list[int]
) -> list[int]:
    """The registered service's answer; without an app that computes saliency maps nothing is
    computed (the results are then shown without overlays, which the ``shown`` event lists)."""
    if _round_maps is None:
        return []
    return _round_maps(
        study=study,
        condition=condition,
        query_image_id=query_image_id,
        result_image_ids=result_image_ids,
    )
