"""The interface every similarity-saliency method implements (STYLE habit 11).

A method explains why each *result* image is similar to a *query* image: it returns one map per
result, over the result's pixels, where higher means the region matters more to the result's
similarity with the query. Inputs are already-preprocessed tensors and an ``embed`` callable,
so the methods know nothing of files, backbones or Django (habit 9).

Subclasses implement :meth:`SimilaritySaliency._explain`; the public :meth:`explain` checks the
inputs before and the output after, and runs the work in the method's ``precision``
(:mod:`explain.precision`), which every method takes and stores in its config. Every method
rebuilds from its config (habit 12):
``type(m)(**m.get_config()).get_config() == m.get_config()``.
"""

from __future__ import annotations

import abc
import inspect
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from explain.precision import compute_precision

__all__ = ["Embed", "SimilaritySaliency"]

#: ``embed(batch)``: a float tensor of shape (B, 3, H, W) to features of shape (B, D).
Embed = Callable[[torch.Tensor], torch.Tensor]


class SimilaritySaliency(abc.ABC):
    """Base class of the saliency methods; see the module docstring.

    ``get_config`` reads back the constructor's arguments from attributes of the same names, so
    a subclass stores each argument under its own name (tuples are returned as lists, which
    keeps configs JSON-able and equal after a JSON round trip).

    Capabilities (class attributes a service reads instead of checking a method's class):

    ``reuses_masked_embeddings``
        The maps split into a query-independent half, ``masked_embeddings(embed, result)``
        (ndarray of shape (n_masks, D): the embeddings of the masked result), and
        ``maps_from_embeddings(query_embedding, result_embedding, masked, *, image_shape)``
        (maps of shape (n_queries, H, W) or (H, W) for one query, no network). A service then
        computes the masked embeddings of a result once, keeps them in the on-disk cache and
        derives every query's map from them (seed 000 Eq. 2 does not depend on the query).
    """

    reuses_masked_embeddings: bool = False

    def explain(self, embed: Embed, query: torch.Tensor, results: torch.Tensor) -> np.ndarray:
        """Saliency maps over each result image.

        Parameters
        ----------
        embed : callable
            Maps a float tensor of shape (B, 3, H, W) to features of shape (B, D); called in
            ``torch.inference_mode``. For an ``nn.Module`` (or an object with a ``model``
            module, like ``retrieval.backbones.Backbone``) the work runs on its device.
        query : Tensor of shape (3, H, W), floating, finite
            The query image, preprocessed as ``embed`` expects.
        results : Tensor of shape (n_results, 3, H, W), floating, finite, n_results >= 1
            The result images, preprocessed likewise, same H and W as the query.

        Returns
        -------
        ndarray of shape (n_results, H, W), float32, finite
            Higher = the region matters more to the result's similarity with the query.

        Raises
        ------
        ValueError
            Bad shapes, dtypes or non-finite values, or ``embed`` not callable.
        """
        self._check_inputs(embed, query, results)
        # Every method stores its precision in its config (explain.precision): set, not inherited.
        with compute_precision(self.precision, embed_device(embed, results.device)):
            maps = self._explain(embed, query, results)
        self._check_output(maps, results)
        return maps

    @abc.abstractmethod
    def _explain(self, embed: Embed, query: torch.Tensor, results: torch.Tensor) -> np.ndarray:
        """Compute the maps; the inputs are already checked. Same contract as :meth:`explain`."""

    @staticmethod
    def _check_inputs(embed: Embed, query: torch.Tensor, results: torch.Tensor) -> None:
        if not callable(embed):
            raise ValueError(f"embed must be callable, got {type(embed).__name__}")
        SimilaritySaliency._check_images("query", query, batched=False)
        SimilaritySaliency._check_images("results", results, batched=True)
        if results.shape[2:] != query.shape[1:]:
            raise ValueError(
                f"query is {tuple(query.shape[1:])} pixels but results are "
                f"{tuple(results.shape[2:])}; preprocess both to the same size"
            )

    @staticmethod
    def _check_images(name: str, value: torch.Tensor, *, batched: bool) -> None:
        """ValueError unless ``value`` is a finite float tensor (3, H, W), or (n, 3, H, W)."""
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if not value.is_floating_point():
            raise ValueError(f"{name} must be a floating tensor, got {value.dtype}")
        ndim = 4 if batched else 3
        if value.ndim != ndim or value.shape[-3] != 3:
            expected = "(n, 3, H, W)" if batched else "(3, H, W)"
            raise ValueError(f"{name} must have shape {expected}, got {tuple(value.shape)}")
        if value.numel() == 0:
            raise ValueError(f"{name} is empty: shape {tuple(value.shape)}")
        if not torch.isfinite(value).all():
            raise ValueError(f"{name} holds NaN or infinite values")

    @staticmethod
    def _check_output(maps: np.ndarray, results: torch.Tensor) -> None:
        expected = (results.shape[0], *results.shape[2:])
        if not isinstance(maps, np.ndarray) or maps.dtype != np.float32:
            raise RuntimeError(f"a method must return a float32 ndarray, got {type(maps)}")
        if maps.shape != expected:
            raise RuntimeError(f"maps have shape {maps.shape}, expected {expected}")
        if not np.isfinite(maps).all():
            raise RuntimeError("maps hold NaN or infinite values")

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, JSON-able (tuples as lists)."""
        config = {}
        for name in inspect.signature(type(self).__init__).parameters:
            if name == "self":
                continue
            value = getattr(self, name)
            config[name] = list(value) if isinstance(value, tuple) else value
        return config

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({params})"


def embed_in_batches(embed: Embed, images: torch.Tensor, batch_size: int) -> np.ndarray:
    """``embed`` over ``images`` of shape (B, 3, H, W), ``batch_size`` at a time.

    Returns
    -------
    ndarray of shape (B, D), float32, finite

    Raises
    ------
    ValueError
        If ``embed`` returns anything but a finite (b, D) tensor for a batch of b images.
    """
    parts = []
    for start in range(0, images.shape[0], batch_size):
        # Channels-last (NHWC) batches: CPU convolutions run faster on them, more so when the
        # weights are in the same order (explain.services.maps); the values are the same.
        batch = images[start : start + batch_size]
        if batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            features = embed(batch)
        if not isinstance(features, torch.Tensor) or features.ndim != 2:
            shape = tuple(getattr(features, "shape", ()))
            raise ValueError(f"embed must return a (B, D) tensor, got shape {shape}")
        if features.shape[0] != batch.shape[0]:
            raise ValueError(f"embed returned {features.shape[0]} rows for {batch.shape[0]} images")
        parts.append(features.detach().to("cpu", torch.float32).numpy())
    out = np.concatenate(parts)
    if not np.isfinite(out).all():
        raise ValueError("embed returned NaN or infinite features")
    return out


def embed_device(embed: Embed, fallback: torch.device) -> torch.device:
    """The device of ``embed``'s weights (an ``nn.Module`` or an object with a ``.model``)."""
    module = embed if isinstance(embed, nn.Module) else getattr(embed, "model", None)
    if isinstance(module, nn.Module):
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            return tensor.device
    return fallback
