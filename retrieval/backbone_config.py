"""What a backbone is, readable without torch: the catalogue of architectures and the config.

:class:`BackboneConfig` (architecture, layer, weights, image size) is validated against
:data:`BACKBONES`, the catalogue of each architecture's feature layers, spatial feature map,
weights and minimum input size. Study specs, the researcher API and the admin validate configs
through this module alone; :mod:`retrieval.backbones` registers a network builder for every
name here and builds the networks (torch, torchvision). No Django here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["BACKBONES", "BackboneConfig", "BackboneSpec", "backbone_config_key"]

NAMED_WEIGHTS = ("imagenet", "none", "fixture")
WEIGHT_SUFFIXES = (".pth", ".pt")


@dataclass(frozen=True)
class BackboneSpec:
    """One architecture of the catalogue.

    Attributes
    ----------
    layers : mapping of str to str
        Public layer names (``"avgpool"``...) to the ``torch.fx`` node names of the module its
        builder returns. Only layers whose outputs are non-negative (after a ReLU) are listed,
        because the features become L1-normalised histograms.
    feature_map_node : str
        Node of the last spatial feature map, shape (B, C, h, w), for saliency methods.
    imagenet : bool
        Whether torchvision has ImageNet weights for it (``weights="imagenet"``).
    fixture : bool, default False
        Whether ``fixtures/backbones/<name>.pt`` is a valid ``weights="fixture"``.
    min_image_size : int, default 32
        Smallest accepted ``image_size`` in pixels.
    """

    layers: Mapping[str, str]
    feature_map_node: str
    imagenet: bool
    fixture: bool = False
    min_image_size: int = 32


_RESNET_LAYERS = {name: name for name in ("layer1", "layer2", "layer3", "layer4", "avgpool")}

BACKBONES: dict[str, BackboneSpec] = {
    "resnet50": BackboneSpec(_RESNET_LAYERS, feature_map_node="layer4", imagenet=True),
    "resnet18": BackboneSpec(_RESNET_LAYERS, feature_map_node="layer4", imagenet=True),
    "vgg19": BackboneSpec(
        # "features" ends in the last max-pool; torchvision's avgpool is an adaptive pool to
        # 7x7, so both give 512 * 7 * 7 = 25088 dims at 224 px. classifier.1 and .4 are the
        # ReLUs after the two 4096-wide fully connected layers.
        {
            "features": "features",
            "avgpool": "avgpool",
            "classifier.1": "classifier.1",
            "classifier.4": "classifier.4",
        },
        # The last conv ReLU (stride 16) rather than the max-pool after it: twice the
        # resolution.
        feature_map_node="features.35",
        imagenet=True,
    ),
    "densenet121": BackboneSpec(
        # torchvision's DenseNet applies the final ReLU and pooling functionally; "relu" is the
        # spatial map after the last ReLU, "avgpool" its global average (1024 dims).
        {"avgpool": "adaptive_avg_pool2d", "relu": "relu"},
        feature_map_node="relu",
        imagenet=True,
    ),
    "synthnet": BackboneSpec(
        {"stage2": "stage2", "stage3": "stage3", "avgpool": "avgpool"},
        feature_map_node="stage3",
        imagenet=False,
        fixture=True,
    ),
}


def _spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown backbone {name!r}; valid names: {sorted(BACKBONES)}") from None


@dataclass(frozen=True)
class BackboneConfig:
    """What to build: architecture, layer, weights and input size.

    Attributes
    ----------
    name : str, default "resnet50"
        A backbone of :data:`BACKBONES`.
    layer : str, default "avgpool"
        Layer whose (flattened) output is the feature vector; the valid names depend on the
        backbone (``"layer4"`` for ResNets, ``"features"``/``"classifier.4"`` for VGG19...).
    weights : str, default "imagenet"
        ``"imagenet"`` (torchvision's default weights, from the local torch hub cache),
        ``"none"`` (random, fixed seed), ``"fixture"`` (the shipped
        ``fixtures/backbones/<name>.pt``) or a path to a local ``.pth``/``.pt`` state dict.
    image_size : int, default 224
        Side in pixels of the square network input. The SynthNet fixture was trained at 128.

    Raises
    ------
    ValueError
        On an unknown backbone or layer (the message lists the valid names), weights the
        backbone does not have, or an image size out of range.
    """

    name: str = "resnet50"
    layer: str = "avgpool"
    weights: str = "imagenet"
    image_size: int = 224

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ValueError(f"name must be a string, got {self.name!r}")
        entry = _spec(self.name)
        if self.layer not in entry.layers:
            raise ValueError(
                f"unknown layer {self.layer!r} for backbone {self.name!r}; "
                f"valid layers: {sorted(entry.layers)}"
            )
        if not isinstance(self.weights, str) or not self.weights:
            raise ValueError(f"weights must be a non-empty string, got {self.weights!r}")
        if self.weights == "imagenet" and not entry.imagenet:
            raise ValueError(f"backbone {self.name!r} has no ImageNet weights")
        if self.weights == "fixture" and not entry.fixture:
            raise ValueError(f"backbone {self.name!r} has no fixture weights")
        if self.weights not in NAMED_WEIGHTS and not self.weights.endswith(WEIGHT_SUFFIXES):
            raise ValueError(
                f"weights must be one of {list(NAMED_WEIGHTS)} or a path to a "
                f"{'/'.join(WEIGHT_SUFFIXES)} file, got {self.weights!r}"
            )
        size = self.image_size
        if isinstance(size, bool) or not isinstance(size, int) or size < entry.min_image_size:
            raise ValueError(
                f"image_size must be an integer >= {entry.min_image_size} for {self.name!r}, "
                f"got {size!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``BackboneConfig.from_dict(c.to_dict()) == c``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackboneConfig:
        """Inverse of :meth:`to_dict`; missing keys take the defaults, unknown keys are refused."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown BackboneConfig keys: {sorted(unknown)}")
        return cls(**data)


def backbone_config_key(config: BackboneConfig) -> str:
    """Hex SHA-256 of the config's canonical JSON: one feature set per (archive, key)."""
    canonical = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
