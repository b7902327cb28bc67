"""The ``overlay`` block of the study spec: how saliency maps are drawn over the results.

Registered by :class:`~explain.apps.ExplainConfig`; the fields are those of
:class:`explain.render.OverlayStyle`, whose defaults follow the papers (seed 000 Fig. 2 and 5,
seed 001 Fig. 3): the heat map over the whole result at one opacity, each map on its own range.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from studyplatform.studies.spec_types import SpecModel, Text, problem

__all__ = ["OverlaySpec"]


class OverlaySpec(SpecModel):
    """How a with-XAI result's saliency map is drawn (explain.render.OverlayStyle)."""

    scale: Literal["map", "study"] = Field(
        "map",
        description="map: each map from its own minimum (cool) to its maximum (warm), as the "
        "papers' figures; study: one range for all maps of the study (0 to the 99th "
        "percentile of their maxima), so a weak result stays cool.",
    )
    colormap: Text(50, required=True) = Field(
        "jet", description="A matplotlib colormap; jet is the papers' blue-to-red heat map."
    )
    alpha: float = Field(0.5, gt=0.0, le=1.0, description="Opacity of the colour.")
    blend: Literal["fixed", "ramp"] = Field(
        "fixed",
        description="fixed: one opacity over the whole result; ramp: opacity alpha * value "
        "(low values leave the image bare).",
    )
    percentile: float = Field(
        99.0, gt=0.0, le=100.0, description="With scale: study, the percentile drawn warmest."
    )

    @field_validator("colormap")
    @classmethod
    def _colormap_known(cls, name: str) -> str:
        import matplotlib

        if name not in matplotlib.colormaps:
            raise problem(f"unknown colormap {name!r}")
        return name
