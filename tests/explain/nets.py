"""Tiny embeddings and seeded networks shared by the explain tests (no download, no GPU)."""

import torch
from torch import nn


def mean_colour(batch: torch.Tensor) -> torch.Tensor:
    """A linear "embedding": the mean of each channel, (B, 3, H, W) to (B, 3)."""
    return batch.mean(dim=(2, 3))


def tiny_cnn(seed: int = 0) -> nn.Module:
    """A seeded random CNN with non-negative 16-dim features (ReLU then average pooling)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ).eval()


class WithFeatureMap:
    """An embed that also gives its last spatial feature map, as ``retrieval.backbones.Backbone``.

    ``net`` maps (B, 3, H, W) to (B, D); its first ``spatial_layers`` layers give (B, C, h, w).
    """

    def __init__(self, net: nn.Sequential, spatial_layers: int) -> None:
        self.model = net
        self._spatial = net[:spatial_layers]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch)

    def feature_map(self, batch: torch.Tensor) -> torch.Tensor:
        return self._spatial(batch)
