"""Saliency maps: one row per (feature set, query, result, method config), files in storage."""

from django.db import models
from django.db.models import Q


class SaliencyMap(models.Model):
    """A similarity saliency map of ``result`` for ``query`` (seed 000: over the result image).

    The backbone config and its weights' hash come with ``feature_set``; ``method_config`` is
    the method's full config (``{"method": "sbsm", "block": 20, ...}``). ``raw_key`` is the map
    as a float16 ``.npy`` (H, W) in the backbone's input frame, ``overlay_key`` the PNG shown to
    workers, drawn as ``overlay_config`` says (``explain.render.OverlayStyle``: colormap, opacity,
    scale per map or per study, and the ``vmin``/``vmax`` used); both are storage keys.
    """

    feature_set = models.ForeignKey(
        "retrieval.FeatureSet", on_delete=models.CASCADE, related_name="saliency_maps"
    )
    query = models.ForeignKey("retrieval.Image", on_delete=models.CASCADE, related_name="+")
    result = models.ForeignKey("retrieval.Image", on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=50)
    method_config = models.JSONField()
    config_key = models.CharField(
        max_length=64, help_text="SHA-256 of the canonical method config."
    )
    raw_key = models.CharField(max_length=500)
    overlay_key = models.CharField(max_length=500, blank=True)
    map_max = models.FloatField(help_text="Largest value of the raw map (distance units).")
    vmax = models.FloatField(null=True, blank=True, help_text="Value drawn at full colour.")
    overlay_config = models.JSONField(
        default=dict,
        blank=True,
        help_text="How the overlay was drawn: explain.render.OverlayStyle's config, vmin, vmax.",
    )
    seconds = models.FloatField(help_text="Compute time of this map, masked embeddings included.")
    from_cache = models.BooleanField(default=False, help_text="Masked embeddings were cached.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["feature_set", "query", "result"]
        constraints = [
            models.UniqueConstraint(
                fields=["feature_set", "query", "result", "config_key"], name="saliency_map_once"
            ),
            models.CheckConstraint(
                condition=Q(seconds__gte=0) & Q(map_max__gte=0), name="saliency_map_values_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method}: {self.result_id} for {self.query_id}"
