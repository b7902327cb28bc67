"""Saliency overlays shown with a with-XAI task's results (seed 001 Figure 3).

An overlay is the PNG of an ``explain.models.SaliencyMap`` for (study feature set, task query,
result image, the condition's method config), kept in Django's storage and found through
``explain.selectors.saliency_overlay_keys`` (no backbone is loaded), which the explain app
registers in ``hooks`` (the studies core does not import explain). A result without an
overlay is shown plain: the page says so in its events and the ``shown`` event lists it
(``overlays_missing``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable

from ..hooks import colorbar_gradient_lookup, overlay_keys_lookup
from ..models import SearchTask

logger = logging.getLogger(__name__)


def overlay_keys(*, task: SearchTask, image_ids: Iterable[int]) -> dict[int, str | None]:
    """{image id: storage key of its overlay for ``task``, or None}; all None for a no-XAI
    task. Never raises for a missing map; a condition whose method config cannot be read
    counts as having no maps (and is logged), so the page still shows the plain images."""
    ids = [int(i) for i in image_ids]
    if not task.condition.is_xai:
        return dict.fromkeys(ids)
    try:
        return overlay_keys_lookup(
            study=task.assignment.study,
            condition=task.condition,
            query_image_id=task.query.image_id,
            result_image_ids=ids,
        )
    except ValueError:
        logger.exception("no overlays for task %s: its condition's config is invalid", task.pk)
        return dict.fromkeys(ids)


def study_colorbar(*, study) -> dict | None:
    """The colour bar a page shows beside the overlays: ``{"gradient": CSS linear-gradient,
    "colormap": name}``, low (cool) on the left and high (warm) on the right, in the study's
    overlay colormap (spec ``overlay.colormap``, default the papers' ``jet``); None when no
    app draws saliency maps."""
    name = ((study.spec or {}).get("overlay") or {}).get("colormap", "jet")
    gradient = _gradient(name)
    return None if gradient is None else {"gradient": gradient, "colormap": name}


@functools.lru_cache(maxsize=8)
def _gradient(name: str) -> str | None:
    try:
        return colorbar_gradient_lookup(name)
    except ValueError:
        logger.exception("unknown overlay colormap %r: the colour bar shows jet", name)
        return colorbar_gradient_lookup("jet")
