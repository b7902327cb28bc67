"""Writes of saliency maps: compute raw maps (GPU workers), then render overlays.

The numeric work is in ``explain.methods`` (no Django); this module resolves the feature set's
backbone, reuses masked embeddings through the on-disk cache, stores the raw map and the overlay
through Django's storage (local folder or S3) and keeps ``SaliencyMap`` rows idempotent.

One compute-and-save loop, :func:`saliency_precompute_chunk` (one result, several queries: the
unit of a study's precompute, so that a method that ``reuses_masked_embeddings``, SBSM, computes
the result's masked embeddings once and serves every query that needs the result);
:func:`saliency_maps_compute` (one query, several results) runs it once per result.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from retrieval.backbones import Backbone, BackboneConfig, build_backbone
from retrieval.models import FeatureSet, Image

from ..base import SimilaritySaliency, embed_device, embed_in_batches
from ..cache import MaskedEmbeddingCache, cache_key
from ..models import SaliencyMap
from ..precision import compute_precision
from ..registry import get_method, method_from_config
from ..registry import method_config as config_of
from ..render import OverlayStyle, map_to_npy_bytes, npy_bytes_to_map, study_normaliser

# Built backbones of this process, by (backbone config, weights hash): a study's precompute calls
# the services once per result image, and rebuilding ResNet50 each time would cost more than
# many maps. Two entries are enough (one feature set at a time, a second during a switch).
_BACKBONES: dict[str, Backbone] = {}
_BACKBONES_KEPT = 2


def _canonical_key(config: dict) -> str:
    return hashlib.sha256(
        json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _backbone_of(feature_set: FeatureSet) -> Backbone:
    """The feature set's backbone, built once per process (see ``_BACKBONES``).

    ValueError if the weights differ from those the features were extracted with. A weights
    file replaced while the process runs is noticed at the process's next start.
    """
    memo = json.dumps(
        [feature_set.backbone_config, feature_set.weights_sha256], sort_keys=True, default=str
    )
    backbone = _BACKBONES.get(memo)
    if backbone is None:
        backbone = build_backbone(BackboneConfig.from_dict(feature_set.backbone_config))
        # Channels-last weights: with the channels-last batches of explain.base, about 1.8x
        # faster convolutions on a CPU (resnet18, 224 px, one thread); the same values.
        backbone.model.to(memory_format=torch.channels_last)
        while len(_BACKBONES) >= _BACKBONES_KEPT:
            _BACKBONES.pop(next(iter(_BACKBONES)))
        _BACKBONES[memo] = backbone
    if feature_set.weights_sha256 and backbone.weights_sha256 != feature_set.weights_sha256:
        raise ValueError(
            f"the weights of feature set {feature_set.pk} changed since its extraction "
            f"({feature_set.weights_sha256[:12]} then, {backbone.weights_sha256[:12]} now)"
        )
    return backbone


def _method_for(backbone: Backbone, method_config: dict):
    """The method, with the backbone's normalisation filled in where the method takes one."""
    config = dict(method_config)
    if "method" not in config:
        raise ValueError(f"method config {method_config!r} names no method")
    parameters = inspect.signature(get_method(config["method"])).parameters
    for name in ("mean", "std"):
        if name in parameters and name not in config:
            config[name] = list(getattr(backbone.preprocess, name))
    method = method_from_config(config)
    return method, config_of(method)


def _precision_of(method, backbone: Backbone):
    """The method's precision for forward passes run here, outside ``method.explain``."""
    return compute_precision(method.precision, embed_device(backbone.model, torch.device("cpu")))


def _masking_config(config: dict) -> dict:
    """The part of an SBSM config that its masked embeddings depend on (not the distance)."""
    return {k: v for k, v in config.items() if k not in ("distance", "batch_size")}


def _open_rgb(image: Image) -> PILImage.Image:
    with PILImage.open(Path(image.directory.path) / image.file_name) as picture:
        return picture.convert("RGB")


def _model_view(backbone: Backbone, picture: PILImage.Image) -> np.ndarray:
    """The image as the backbone sees it (resized, cropped), (H, W, 3) uint8."""
    tensor = backbone.preprocess(picture)
    mean = torch.tensor(backbone.preprocess.mean).view(3, 1, 1)
    std = torch.tensor(backbone.preprocess.std).view(3, 1, 1)
    pixels = (tensor * std + mean).clamp(0, 1).mul(255).round().byte()
    return pixels.permute(1, 2, 0).numpy()


def _store(key: str, content: bytes) -> str:
    # Deterministic keys: a recomputed map replaces the old file instead of gaining a suffix.
    if default_storage.exists(key):
        default_storage.delete(key)
    return default_storage.save(key, ContentFile(content))


def _masked_cache() -> MaskedEmbeddingCache:
    return MaskedEmbeddingCache(
        Path(settings.SALIENCY_CACHE_DIR), max_bytes=settings.SALIENCY_CACHE_BYTES
    )


def _masked_stack(
    *,
    cache: MaskedEmbeddingCache,
    feature_set: FeatureSet,
    backbone: Backbone,
    method: SimilaritySaliency,
    full_config: dict,
    result: Image,
    result_tensor: torch.Tensor,
) -> tuple[np.ndarray, bool]:
    """The result's float16 masked-embedding stack and whether it came from the cache."""
    masked_key = cache_key(
        f"{result.archive_id}/{result.pk}",
        feature_set.backbone_config,
        backbone.weights_sha256,
        _masking_config(full_config),
    )
    masked = cache.get(masked_key)
    if masked is not None:
        return masked, True
    computed = method.masked_embeddings(backbone.model, result_tensor)
    cache.put(masked_key, computed)
    # Every map, first or later, is derived from the same stored float16 stack.
    masked = cache.get(masked_key)
    if masked is None:  # evicted at once by another process: the same values, cast here
        masked = computed.astype(np.float16)
    return masked, False


def _save_map(
    *,
    feature_set: FeatureSet,
    query_id: int,
    result_id: int,
    key: str,
    full_config: dict,
    saliency: np.ndarray,
    seconds: float,
    from_cache: bool,
) -> SaliencyMap:
    """Store the raw map, then its row (one commit per map, so a killed run keeps its maps)."""
    raw_key = _store(
        f"saliency/{feature_set.pk}/{key[:16]}/{query_id}/{result_id}.npy",
        map_to_npy_bytes(saliency),
    )
    row, _ = SaliencyMap.objects.update_or_create(
        feature_set=feature_set,
        query_id=query_id,
        result_id=result_id,
        config_key=key,
        defaults={
            "method": full_config["method"],
            "method_config": full_config,
            "raw_key": raw_key,
            "map_max": float(np.max(saliency)),
            "seconds": max(0.0, seconds),
            "from_cache": from_cache,
            "overlay_key": "",
            "vmax": None,
            "overlay_config": {},
        },
    )
    return row


def _chunk_maps(
    *,
    feature_set: FeatureSet,
    backbone: Backbone,
    method: SimilaritySaliency,
    full_config: dict,
    result: Image,
    result_tensor: torch.Tensor,
    query_tensors: torch.Tensor,
    started: float,
) -> Iterator[tuple[np.ndarray, float, bool]]:
    """(map (H, W) float32, seconds charged to it, whether its masked embeddings were reused)
    for each query of a chunk, in order; a method without masked-embedding reuse computes each
    map only when asked for the next, so the caller commits every map as soon as it exists."""
    n = len(query_tensors)
    if method.reuses_masked_embeddings:
        masked, from_cache = _masked_stack(
            cache=_masked_cache(),
            feature_set=feature_set,
            backbone=backbone,
            method=method,
            full_config=full_config,
            result=result,
            result_tensor=result_tensor,
        )
        masked_seconds = time.perf_counter() - started
        derive_started = time.perf_counter()
        with _precision_of(method, backbone):
            embeddings = embed_in_batches(
                backbone.model, torch.cat([result_tensor[None], query_tensors]), method.batch_size
            )
        maps = method.maps_from_embeddings(
            embeddings[1:], embeddings[0], masked, image_shape=tuple(result_tensor.shape[1:])
        )
        # The masked pass is charged to the first map; every map pays its share of the rest.
        share = (time.perf_counter() - derive_started) / n
        for i in range(n):
            yield maps[i], share + (masked_seconds if i == 0 else 0.0), from_cache or i > 0
        return
    setup_seconds = time.perf_counter() - started
    for i in range(n):
        map_started = time.perf_counter()
        # The backbone itself: some methods (SAM) need its feature_map as well.
        saliency = method.explain(backbone, query_tensors[i], result_tensor[None])[0]
        yield saliency, time.perf_counter() - map_started + setup_seconds / n, False


def method_config_full(*, feature_set: FeatureSet, method_config: dict) -> tuple[dict, str]:
    """The full method config under ``feature_set``'s backbone and its ``config_key``.

    The full config is the method's every parameter (defaults included) with the backbone's
    normalisation filled in where the method takes one; ``config_key`` is the SHA-256 of its
    canonical JSON, as stored on ``SaliencyMap``. Builds the backbone (once per process).
    ValueError for an unknown method or parameter.
    """
    _, full_config = _method_for(_backbone_of(feature_set), method_config)
    return full_config, _canonical_key(full_config)


def saliency_maps_compute(
    *, feature_set: FeatureSet, query: Image, results: Iterable[Image], method_config: dict
) -> list[SaliencyMap]:
    """Compute (or find) the map of each result for ``query``; returns the rows, in order.

    One :func:`saliency_precompute_chunk` per result, so both ways in share one compute-and-save
    loop: idempotent, masked embeddings reused through the on-disk cache
    (``SALIENCY_CACHE_DIR``) by methods that can. ``ValueError`` for an unknown method or
    parameter, or weights changed since extraction.
    """
    results = list(results)
    for result in results:
        saliency_precompute_chunk(
            feature_set=feature_set, result=result, queries=[query], method_config=method_config
        )
    _, key = method_config_full(feature_set=feature_set, method_config=method_config)
    # One row per result (the unique constraint holds the query and config fixed here).
    rows = {
        row.result_id: row
        for row in SaliencyMap.objects.filter(
            feature_set=feature_set, query=query, result__in=results, config_key=key
        )
    }
    return [rows[result.pk] for result in results]


def saliency_precompute_chunk(
    *,
    feature_set: FeatureSet,
    result: Image,
    queries: Iterable[Image],
    method_config: dict,
    on_map: Callable[[SaliencyMap], None] | None = None,
) -> int:
    """The maps of one result image for each of ``queries``: a study precompute's chunk.

    For a method that ``reuses_masked_embeddings`` (exact SBSM) the result's masked embeddings
    ``f(A (.) m_i)`` (query-independent, seed 000 Eq. 2) are computed at most once here, or taken from the on-disk cache, and every
    query's map is derived from them (:meth:`Sbsm.maps_from_embeddings`, all queries in one
    call). Other methods run once per query.

    Idempotent: maps that exist are skipped before any work (a chunk whose maps all exist runs
    no network at all), and each map is committed as soon as it is computed, so a run killed
    midway keeps its finished maps and a rerun or a redelivered task does only the rest.

    Parameters
    ----------
    on_map : callable, optional
        Called with each new row right after it is committed (progress bars; tests stop a run
        from it).

    Returns
    -------
    int
        The number of maps computed (0 when all existed).

    Raises
    ------
    ValueError
        Unknown method or parameter, weights changed since extraction.
    """
    backbone = _backbone_of(feature_set)
    method, full_config = _method_for(backbone, method_config)
    key = _canonical_key(full_config)
    by_id = {query.pk: query for query in queries}
    present = set(
        SaliencyMap.objects.filter(
            feature_set=feature_set, result=result, config_key=key, query_id__in=list(by_id)
        ).values_list("query_id", flat=True)
    )
    todo = [by_id[pk] for pk in sorted(by_id) if pk not in present]
    if not todo:
        return 0
    started = time.perf_counter()
    result_tensor = backbone.preprocess(_open_rgb(result))
    query_tensors = torch.stack([backbone.preprocess(_open_rgb(query)) for query in todo])
    maps = _chunk_maps(
        feature_set=feature_set,
        backbone=backbone,
        method=method,
        full_config=full_config,
        result=result,
        result_tensor=result_tensor,
        query_tensors=query_tensors,
        started=started,
    )
    for query, (saliency, seconds, reused) in zip(todo, maps, strict=True):
        row = _save_map(
            feature_set=feature_set,
            query_id=query.pk,
            result_id=result.pk,
            key=key,
            full_config=full_config,
            saliency=saliency,
            seconds=seconds,
            from_cache=reused,
        )
        if on_map is not None:
            on_map(row)
    return len(todo)


def saliency_overlays_render(
    *,
    feature_set: FeatureSet,
    config_key: str,
    style: OverlayStyle | Mapping[str, Any] | None = None,
) -> int:
    """Draw the overlay of every map of (feature set, method config) in ``style``.

    ``style`` is an :class:`explain.render.OverlayStyle` or its (partial) config; None is the
    default, the papers' look (the colormap over the whole result at a fixed opacity, each map
    on its own scale). With ``scale="study"`` every map of the group is drawn at one range,
    ``vmin = 0`` and ``vmax`` the percentile of the group's map maxima, so equal values look
    equal across results; a study's with-XAI condition has one feature set and one method
    config, so its maps lie in one group. The group is wider than one study when several
    studies share the feature set and config (their maps are the same rows); a second study
    with another style or a wider range then redraws the shared overlays (precompute a study
    before the one sharing its group goes live).

    Re-rendering reads the stored raw map (``raw_key``); nothing is recomputed. The config
    each overlay was drawn with (style, ``vmin``, ``vmax``) is stored in ``overlay_config``.

    Idempotent: an overlay already drawn in ``style`` at its range is left as it is, so a
    second call writes nothing. Returns the number of overlays written. ValueError for a bad
    style, named.
    """
    if not isinstance(style, OverlayStyle):
        style = OverlayStyle.from_config(style)
    maps = list(
        SaliencyMap.objects.filter(feature_set=feature_set, config_key=config_key).select_related(
            "result__directory"
        )
    )
    if not maps:
        return 0
    study_range = None
    if style.scale == "study":
        study_range = study_normaliser([m.map_max for m in maps], percentile=style.percentile)
    wanted = style.get_config()

    def drawn_as_wanted(row: SaliencyMap) -> bool:
        drawn = row.overlay_config or {}
        if not row.overlay_key or {name: drawn.get(name) for name in wanted} != wanted:
            return False
        return study_range is None or (drawn.get("vmin"), drawn.get("vmax")) == study_range

    stale = [row for row in maps if not drawn_as_wanted(row)]
    if not stale:
        return 0
    backbone = _backbone_of(feature_set)
    for row in stale:
        with default_storage.open(row.raw_key, "rb") as handle:
            saliency = npy_bytes_to_map(handle.read())
        view = _model_view(backbone, _open_rgb(row.result))
        png, drawn = style.render(view, saliency, study_range)
        row.overlay_key = _store(row.raw_key.removesuffix(".npy") + ".png", png)
        row.vmax = drawn["vmax"]
        row.overlay_config = drawn
        row.save(update_fields=["overlay_key", "vmax", "overlay_config"])
    return len(stale)
