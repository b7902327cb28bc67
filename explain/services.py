"""Writes of saliency maps: compute raw maps (GPU workers), then render overlays for a study.

The numeric work is in ``explain.methods`` (no Django); this module resolves the feature set's
backbone, reuses masked embeddings through the on-disk cache, stores the raw map and the overlay
through Django's storage (local folder or S3) and keeps ``SaliencyMap`` rows idempotent.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from retrieval.backbones import Backbone, BackboneConfig, build_backbone
from retrieval.models import FeatureSet, Image

from .cache import MaskedEmbeddingCache, cache_key
from .methods.sbsm import Sbsm
from .models import SaliencyMap
from .registry import get_method, method_from_config
from .registry import method_config as config_of
from .render import map_to_npy_bytes, npy_bytes_to_map, render_overlay, study_normaliser


def _canonical_key(config: dict) -> str:
    return hashlib.sha256(
        json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _backbone_of(feature_set: FeatureSet) -> Backbone:
    backbone = build_backbone(BackboneConfig.from_dict(feature_set.backbone_config))
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


def saliency_maps_compute(
    *, feature_set: FeatureSet, query: Image, results: Iterable[Image], method_config: dict
) -> list[SaliencyMap]:
    """Compute (or find) the map of each result for ``query``; returns the rows, in order.

    Idempotent: a map that exists for (feature set, query, result, full method config) is not
    computed again. For SBSM the query-independent masked embeddings of each result come from
    the on-disk cache (``SALIENCY_CACHE_DIR``) when another query computed them before.
    ``ValueError`` for an unknown method or parameter, or weights changed since extraction.
    """
    backbone = _backbone_of(feature_set)
    method, full_config = _method_for(backbone, method_config)
    key = _canonical_key(full_config)
    cache = MaskedEmbeddingCache(
        Path(settings.SALIENCY_CACHE_DIR), max_bytes=settings.SALIENCY_CACHE_BYTES
    )
    query_tensor = backbone.preprocess(_open_rgb(query))
    rows = []
    for result in results:
        existing = SaliencyMap.objects.filter(
            feature_set=feature_set, query=query, result=result, config_key=key
        ).first()
        if existing is not None:
            rows.append(existing)
            continue
        started = time.perf_counter()
        result_tensor = backbone.preprocess(_open_rgb(result))
        from_cache = False
        if isinstance(method, Sbsm):
            masked_key = cache_key(
                f"{result.archive_id}/{result.pk}",
                feature_set.backbone_config,
                backbone.weights_sha256,
                _masking_config(full_config),
            )
            masked = cache.get(masked_key)
            from_cache = masked is not None
            if masked is None:
                cache.put(masked_key, method.masked_embeddings(backbone.model, result_tensor))
                # Every map, first or later, is derived from the same stored float16 stack.
                masked = cache.get(masked_key)
            with torch.inference_mode():
                pair = backbone.model(torch.stack([query_tensor, result_tensor])).float().numpy()
            saliency = method.maps_from_embeddings(
                pair[0], pair[1], masked, image_shape=tuple(result_tensor.shape[1:])
            )
        else:
            # The backbone itself: some methods (SAM) need its feature_map as well.
            saliency = method.explain(backbone, query_tensor, result_tensor[None])[0]
        raw_key = _store(
            f"saliency/{feature_set.pk}/{key[:16]}/{query.pk}/{result.pk}.npy",
            map_to_npy_bytes(saliency),
        )
        row, _ = SaliencyMap.objects.update_or_create(
            feature_set=feature_set,
            query=query,
            result=result,
            config_key=key,
            defaults={
                "method": full_config["method"],
                "method_config": full_config,
                "raw_key": raw_key,
                "map_max": float(np.max(saliency)),
                "seconds": time.perf_counter() - started,
                "from_cache": from_cache,
                "overlay_key": "",
                "vmax": None,
            },
        )
        rows.append(row)
    return rows


def saliency_overlays_render(*, feature_set: FeatureSet, config_key: str) -> int:
    """Render every map of (feature set, method config) with one shared normalisation.

    All maps of the group are drawn with the same ``vmin``/``vmax`` (``explain.render``), so equal
    values look equal across results. Returns the number of overlays written.
    """
    maps = list(
        SaliencyMap.objects.filter(feature_set=feature_set, config_key=config_key).select_related(
            "result__directory"
        )
    )
    if not maps:
        return 0
    vmin, vmax = study_normaliser([m.map_max for m in maps])
    backbone = _backbone_of(feature_set)
    for row in maps:
        with default_storage.open(row.raw_key, "rb") as handle:
            saliency = npy_bytes_to_map(handle.read())
        view = _model_view(backbone, _open_rgb(row.result))
        png = render_overlay(view, saliency, vmin=vmin, vmax=vmax)
        row.overlay_key = _store(row.raw_key.removesuffix(".npy") + ".png", png)
        row.vmax = vmax
        row.save(update_fields=["overlay_key", "vmax"])
    return len(maps)
