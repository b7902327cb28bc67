"""Search Activation Maps, SAM (seed 003: Hamilton et al., "Model-agnostic explainability for
visual search", Sec. 4, Eq. 3).

Eq. 3 contracts the spatial activations ``f_hwc`` of one image (before global average pooling)
with the average-pooled activations ``g_c`` of the other, both normalised along the channels::

    a_hw := norm_c(f_hwc) norm_c(g^c)                                       (Eq. 3)

The seed writes it with ``f`` from the query and ``g`` from the retrieved image, and notes that
the two can be switched to get attention over the retrieved image; our maps lie over the
*result*, so here ``f`` is the result's last spatial feature map and ``g`` the query's. What is
implemented, per result::

    F    = feature_map(A)                        shape (C, h, w)
    g    = mean over (h, w) of feature_map(Q)    shape (C,), the query's pooled activations
    a_hw = <F[:, h, w] / |F[:, h, w]|, g / |g|>  (Eq. 3, norm_c = L2 norm over channels)
    map  = upsample_bilinear(max(a, 0), (H, W))

so ``a_hw`` is the cosine similarity between the query's pooled vector and the result's
feature column at (h, w). Differences from the seed, and choices it leaves open:

* ``norm_c`` is read as L2 normalisation; a zero vector stays zero (its similarity is 0).
* ``g`` is the spatial mean of the query's feature map, not ``embed(query)``: that is Eq. 3's
  "average pooled activations", and it equals the embedding for backbones cut at the global
  average pool (ResNet ``avgpool``) while staying defined, with ``C`` channels, for any layer.
  ``embed`` itself is never called.
* ``max(., 0)`` (as in CAM) and the bilinear upsampling (``align_corners=False``) are ours: the
  seed overlays ``a`` on the pixels without saying how; the interface wants (H, W) maps where
  higher = more similar, and negative cosines mean "unlike the query", not "matters".

The feature map comes from ``embed.feature_map(batch)`` (as on
:class:`retrieval.backbones.Backbone`); an embed without one is refused.

One forward pass per image; no Django here (STYLE habit 9).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from explain.base import Embed, SimilaritySaliency, embed_device
from explain.methods.occlusion import check_batch_size
from explain.precision import check_precision
from explain.registry import register_method

__all__ = ["Sam", "sam_maps"]


def _feature_map(embed: Embed, batch: torch.Tensor) -> torch.Tensor:
    """``embed``'s last spatial feature map for ``batch``, checked; float32 on the CPU."""
    with torch.inference_mode():
        if not callable(getattr(embed, "feature_map", None)):
            raise ValueError(
                "SAM needs the last spatial feature map: embed must have a feature_map(batch) "
                "method returning (B, C, h, w), as retrieval.backbones.Backbone does; got "
                f"{type(embed).__name__}"
            )
        maps = embed.feature_map(batch)
    if not isinstance(maps, torch.Tensor) or maps.ndim != 4 or maps.shape[0] != batch.shape[0]:
        shape = tuple(getattr(maps, "shape", ()))
        raise ValueError(
            f"feature_map must return a ({batch.shape[0]}, C, h, w) tensor, got shape {shape}"
        )
    maps = maps.detach().to("cpu", torch.float32)
    if not torch.isfinite(maps).all():
        raise ValueError("feature_map returned NaN or infinite values")
    return maps


def sam_maps(
    query_map: torch.Tensor, result_maps: torch.Tensor, image_shape: tuple[int, int]
) -> np.ndarray:
    """Eq. 3 with ReLU and bilinear upsampling, from feature maps (see the module docstring).

    Parameters
    ----------
    query_map : Tensor of shape (C, h_q, w_q)
        The query's feature map; only its spatial mean is used.
    result_maps : Tensor of shape (n, C, h, w)
        The results' feature maps.
    image_shape : (H, W)
        Size of the maps returned.

    Returns
    -------
    ndarray of shape (n, H, W), float32, values in [0, 1]
    """
    if query_map.ndim != 3 or result_maps.ndim != 4 or query_map.shape[0] != result_maps.shape[1]:
        raise ValueError(
            f"need a (C, h, w) query map and (n, C, h, w) result maps with the same C, got "
            f"{tuple(query_map.shape)} and {tuple(result_maps.shape)}"
        )
    pooled = query_map.detach().double().mean(dim=(1, 2))
    pooled = F.normalize(pooled, dim=0)  # norm_c(g); a zero vector stays zero
    columns = F.normalize(result_maps.detach().double(), dim=1)  # norm_c(f_hwc), per location
    attention = torch.einsum("nchw,c->nhw", columns, pooled).clamp_min(0)
    up = F.interpolate(
        attention[:, None], size=tuple(image_shape), mode="bilinear", align_corners=False
    )[:, 0]
    # Bilinear weights are non-negative and sum to 1, so the range [0, 1] is kept; the clip
    # only removes rounding.
    return up.clamp(0, 1).to(torch.float32).numpy()


@register_method("sam")
class Sam(SimilaritySaliency):
    """Search Activation Maps over the result images; see the module docstring.

    Parameters
    ----------
    batch_size : int, default 32
        Result images per forward pass of the feature map.
    precision : {"fp32", "tf32", "bf16"}, default "fp32"
        Arithmetic of the forward passes (:mod:`explain.precision`).

    Notes
    -----
    :meth:`explain` returns maps of shape (n_results, H, W), float32, in [0, 1]: the positive
    part of the cosine similarity between the query's pooled activations and each location of
    the result's feature map, upsampled. It raises ValueError when ``embed`` provides no
    feature map (see :func:`_feature_map`) or the query's and results' channels differ.
    """

    def __init__(self, batch_size: int = 32, precision: str = "fp32") -> None:
        self.batch_size = check_batch_size(batch_size)
        self.precision = check_precision(precision)

    def _explain(self, embed: Embed, query: torch.Tensor, results: torch.Tensor) -> np.ndarray:
        device = embed_device(embed, results.device)
        query_map = _feature_map(embed, query[None].to(device))[0]
        image_shape = (int(results.shape[2]), int(results.shape[3]))
        parts = [
            sam_maps(
                query_map,
                _feature_map(embed, results[start : start + self.batch_size].to(device)),
                image_shape,
            )
            for start in range(0, results.shape[0], self.batch_size)
        ]
        return np.concatenate(parts)
