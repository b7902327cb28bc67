"""A worker can see the explanation: every with-XAI result of the demo study is visibly tinted."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from explain.models import SaliencyMap
from explain.services import saliency_precompute_study
from explain.services.maps import _backbone_of, _model_view, _open_rgb
from tests.studies import conftest as demo

# The study app's demo-study fixtures, used here as they are.
_demo_features = demo._demo_features
demo_feature_set = demo.demo_feature_set
demo_spec = demo.demo_spec
demo_study = demo.demo_study

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# Seed 000 Fig. 2/5 and seed 001 Fig. 3 tint the whole result; 20 grey levels of 255 is a
# difference anyone sees (the former rendering, opacity 0.5 * t, gave a median of 2.6).
VISIBLE_GREY_LEVELS = 20.0


def mean_difference(overlay: np.ndarray, plain: np.ndarray) -> float:
    """Mean absolute difference over pixels and RGB channels, in grey levels of 255."""
    return float(np.abs(overlay.astype(np.float64) - plain.astype(np.float64)).mean())


def test_every_with_xai_result_of_the_demo_study_differs_from_its_plain_image(demo_study):
    saliency_precompute_study(study=demo_study, sync=True)
    rows = list(SaliencyMap.objects.select_related("result__directory", "feature_set"))
    assert rows, "the demo study has with-XAI results"
    backbone = _backbone_of(rows[0].feature_set)

    differences = []
    for row in rows:
        with default_storage.open(row.overlay_key, "rb") as handle:
            overlay = np.asarray(PILImage.open(io.BytesIO(handle.read())).convert("RGB"))
        plain = _model_view(backbone, _open_rgb(row.result))
        assert overlay.shape == plain.shape
        differences.append(mean_difference(overlay, plain))

    weakest = min(differences)
    assert weakest >= VISIBLE_GREY_LEVELS, (
        f"{sum(d < VISIBLE_GREY_LEVELS for d in differences)} of {len(differences)} overlays "
        f"differ by less than {VISIBLE_GREY_LEVELS} grey levels (weakest {weakest:.1f}, "
        f"median {np.median(differences):.1f})"
    )
    print(
        f"{len(differences)} with-XAI results: mean |overlay - plain| median "
        f"{np.median(differences):.1f}, 10th percentile {np.percentile(differences, 10):.1f}, "
        f"min {weakest:.1f} grey levels of 255"
    )
