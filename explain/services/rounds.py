"""The maps a refine round shows, computed on demand on the gpu worker that ranks the round.

With ``search.scope: archive`` a round can show any archive image (seed 001: IQR over the whole
archive), so the precompute is only a warm start: every result of the round without a map is
computed here, before the round is shown, under the condition's exact method config. SBSM's
masked embeddings come from the shared on-disk cache when any earlier query needed the same
result (one result's masked embeddings serve every query).

Overlays of new maps are drawn on the scale the group already uses (the largest ``vmax`` of its
rendered overlays), so the overlays a worker has seen keep their colours; a new map stronger
than that scale saturates at full colour. A group with no overlay yet gets
:func:`explain.render.study_normaliser` over its maps, as the precompute does.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.files.storage import default_storage
from django.db.models import Max

from retrieval.models import FeatureSet, Image

from ..models import SaliencyMap
from ..render import npy_bytes_to_map, render_overlay, study_normaliser
from .maps import (
    _backbone_of,
    _model_view,
    _open_rgb,
    _store,
    method_config_full,
    saliency_precompute_chunk,
)


def saliency_maps_for_results(
    *, feature_set: FeatureSet, query: Image, result_ids: Iterable[int], method_config: dict
) -> list[int]:
    """Compute the missing maps of ``result_ids`` for ``query`` and render their overlays.

    ``method_config`` is the condition's config (``{"method": ..., **params}``); the backbone's
    normalisation is filled in as for the precompute, so the rows found and made are the
    precompute's. Idempotent: existing maps are neither computed nor redrawn.

    Returns
    -------
    list of int
        The result ids whose maps were computed by this call (the round's on-demand maps).
    """
    wanted = list(dict.fromkeys(int(i) for i in result_ids))
    if not wanted:
        return []
    _, key = method_config_full(feature_set=feature_set, method_config=method_config)
    present = set(
        SaliencyMap.objects.filter(
            feature_set=feature_set, query=query, config_key=key, result_id__in=wanted
        ).values_list("result_id", flat=True)
    )
    images = Image.objects.select_related("directory").in_bulk(wanted)
    computed = []
    for result_id in wanted:
        if result_id in present:
            continue
        # One result, one query: masked embeddings from the shared cache when any query
        # needed this result before.
        made = saliency_precompute_chunk(
            feature_set=feature_set,
            result=images[result_id],
            queries=[query],
            method_config=method_config,
        )
        if made:
            computed.append(result_id)
    unrendered = [
        row
        for row in SaliencyMap.objects.filter(
            feature_set=feature_set, query=query, config_key=key, result_id__in=wanted
        ).select_related("result__directory")
        if not row.overlay_key
    ]
    _render_on_group_scale(feature_set=feature_set, config_key=key, rows=unrendered)
    return computed


def _render_on_group_scale(
    *, feature_set: FeatureSet, config_key: str, rows: list[SaliencyMap]
) -> None:
    if not rows:
        return
    group = SaliencyMap.objects.filter(feature_set=feature_set, config_key=config_key)
    vmax = group.exclude(vmax=None).aggregate(top=Max("vmax"))["top"]
    vmin = 0.0
    if vmax is None:
        vmin, vmax = study_normaliser(list(group.values_list("map_max", flat=True)))
    backbone = _backbone_of(feature_set)
    for row in rows:
        with default_storage.open(row.raw_key, "rb") as handle:
            saliency = npy_bytes_to_map(handle.read())
        view = _model_view(backbone, _open_rgb(row.result))
        png = render_overlay(view, saliency, vmin=vmin, vmax=vmax)
        row.overlay_key = _store(row.raw_key.removesuffix(".npy") + ".png", png)
        row.vmax = vmax
        row.save(update_fields=["overlay_key", "vmax"])
