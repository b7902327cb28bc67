"""Writes of the explain app (STYLE habit 2), split by sub-domain.

``maps``: one query's maps, one result image's chunk, overlays of a (feature set, config)
group; ``precompute``: a whole study's plan, queued on Celery or run in process; ``rounds``:
the missing maps of a refine round's results, computed on demand. Everything is
importable from ``explain.services`` itself.
"""

from .maps import (
    method_config_full,
    saliency_maps_compute,
    saliency_overlays_render,
    saliency_precompute_chunk,
)
from .precompute import PrecomputeReport, saliency_precompute_study, study_overlay_style
from .rounds import saliency_maps_for_results

__all__ = [
    "PrecomputeReport",
    "method_config_full",
    "saliency_maps_compute",
    "saliency_maps_for_results",
    "saliency_overlays_render",
    "saliency_precompute_chunk",
    "saliency_precompute_study",
    "study_overlay_style",
]
