"""Feature backbones: a registry of CNNs, their weights and their preprocessing.

No Django here. A backbone is described by a :class:`BackboneConfig` (architecture, layer,
weights, image size), which round-trips through ``to_dict``/``from_dict`` and is stored beside
every feature file together with the hash of the weights, so that features of two models are
never mixed. :func:`build_backbone` turns a config into a :class:`Backbone`: the network in
eval mode cut at the named layer, the preprocessing that belongs to its weights, the feature
dimension and the weights' sha256.

Weights are never downloaded. ``weights="imagenet"`` reads the file torchvision itself would
have cached (``torch.hub.get_dir()/checkpoints/<file name of the weights URL>``, which honours
``TORCH_HOME``) and raises :class:`WeightsNotFoundError` naming that path and the URL when it is
missing. Random weights are used only when asked for with ``weights="none"``; they are drawn
from a fixed seed, so "random-init" names one set of weights per architecture and torch build.

The paper's features are ResNet50 ``avgpool`` (seed 000, Sec. 3), compared with the histogram
intersection distance; :func:`features_l1_normalise` makes them histograms.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from retrieval.backbone_config import BACKBONES, BackboneConfig
from retrieval.files import file_sha256
from retrieval.fixture_backbone import (
    FILE_FORMAT,
    SYNTHNET_MEAN,
    SYNTHNET_STD,
    SYNTHNET_VERSION,
    SynthNet,
)

__all__ = [
    "FIXTURE_DIR",
    "Backbone",
    "BackboneConfig",
    "ImagePreprocess",
    "WeightsNotFoundError",
    "build_backbone",
    "expected_imagenet_path",
    "features_l1_normalise",
    "file_sha256",
    "get_backbone_builder",
    "list_backbones",
    "register_backbone",
]

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "backbones"
RANDOM_INIT = "random-init"
# Seed of the initialisation used for ``weights="none"``.
_RANDOM_INIT_SEED = 0
# ImageNet evaluation: resize the shorter side to 256/224 of the crop, then centre-crop.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_IMAGENET_RESIZE_RATIO = 256 / 224


class WeightsNotFoundError(FileNotFoundError):
    """The weights file a config asks for is not on this machine; the message says what to do."""


# ---------------------------------------------------------------------------
# Registry.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    # Public layer name -> torch.fx node of the model whose output is that layer's features.
    # Only layers whose outputs are non-negative (after a ReLU) are listed, because the
    # features become L1-normalised histograms.
    layers: Mapping[str, str]
    # Node of the last spatial feature map (B, C, h, w), for saliency methods.
    feature_map_node: str
    imagenet: type[torchvision.models.WeightsEnum] | None
    fixture: bool
    min_image_size: int


_REGISTRY: dict[str, _Entry] = {}


def register_backbone(
    name: str,
    *,
    imagenet: type[torchvision.models.WeightsEnum] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a keyword-only builder ``builder(*, num_classes) -> nn.Module``.

    Parameters
    ----------
    name : str
        A backbone of the catalogue :data:`retrieval.backbone_config.BACKBONES`, which holds its
        layers, feature-map node, fixture flag and minimum image size (read without torch).
    imagenet : WeightsEnum subclass, optional
        torchvision weights whose ``DEFAULT`` is used for ``weights="imagenet"``; given exactly
        when the catalogue says the backbone has ImageNet weights.
    """
    if name not in BACKBONES:
        raise ValueError(f"backbone {name!r} is not in retrieval.backbone_config.BACKBONES")
    spec = BACKBONES[name]
    if (imagenet is not None) != spec.imagenet:
        raise ValueError(f"the catalogue and the registration of {name!r} disagree on ImageNet")

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = _Entry(
            builder,
            dict(spec.layers),
            spec.feature_map_node,
            imagenet,
            spec.fixture,
            spec.min_image_size,
        )
        return builder

    return decorator


def list_backbones() -> list[str]:
    """Registered backbone names, sorted."""
    return sorted(_REGISTRY)


def get_backbone_builder(name: str) -> Callable[..., nn.Module]:
    """The keyword-only builder of a registered backbone (random weights, full network)."""
    return _entry(name).builder


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; valid names: {list_backbones()}") from None


@register_backbone("resnet50", imagenet=torchvision.models.ResNet50_Weights)
def resnet50(*, num_classes: int = 1000) -> nn.Module:
    """ResNet-50, random weights; ``avgpool`` features have 2048 dims."""
    return torchvision.models.resnet50(weights=None, num_classes=num_classes)


@register_backbone("resnet18", imagenet=torchvision.models.ResNet18_Weights)
def resnet18(*, num_classes: int = 1000) -> nn.Module:
    """ResNet-18, random weights; ``avgpool`` features have 512 dims."""
    return torchvision.models.resnet18(weights=None, num_classes=num_classes)


@register_backbone("vgg19", imagenet=torchvision.models.VGG19_Weights)
def vgg19(*, num_classes: int = 1000) -> nn.Module:
    """VGG-19 without BatchNorm, random weights."""
    return torchvision.models.vgg19(weights=None, num_classes=num_classes)


@register_backbone("densenet121", imagenet=torchvision.models.DenseNet121_Weights)
def densenet121(*, num_classes: int = 1000) -> nn.Module:
    """DenseNet-121, random weights."""
    return torchvision.models.densenet121(weights=None, num_classes=num_classes)


@register_backbone("synthnet")
def synthnet(*, num_classes: int = 24) -> nn.Module:
    """The fixture CNN of :mod:`retrieval.fixture_backbone`; ``avgpool`` has 256 dims."""
    return SynthNet(num_classes=num_classes)


# ---------------------------------------------------------------------------
# Preprocessing.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImagePreprocess:
    """PIL image -> normalised float tensor of shape (3, image_size, image_size).

    The shorter side is resized (bilinear, antialiased) to ``resize_size``, the centre
    ``image_size`` square is cropped, values are scaled to [0, 1] and normalised per channel
    with ``mean`` and ``std``. Non-RGB images are converted to RGB first.
    """

    image_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if image.mode != "RGB":
            image = image.convert("RGB")
        image = TF.resize(
            image, [self.resize_size], interpolation=InterpolationMode.BILINEAR, antialias=True
        )
        image = TF.center_crop(image, [self.image_size, self.image_size])
        tensor = TF.pil_to_tensor(image).float().div_(255.0)
        return TF.normalize(tensor, list(self.mean), list(self.std))

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_size": self.image_size,
            "resize_size": self.resize_size,
            "mean": list(self.mean),
            "std": list(self.std),
        }


def _imagenet_preprocess(entry: _Entry, image_size: int) -> ImagePreprocess:
    # torchvision's own evaluation transform for the default weights (ResNet50 V2 resizes to
    # 232 for a 224 crop, the others to 256), scaled to the requested crop.
    transform = entry.imagenet.DEFAULT.transforms()  # type: ignore[union-attr]
    ratio = transform.resize_size[0] / transform.crop_size[0]
    return ImagePreprocess(
        image_size=image_size,
        resize_size=max(image_size, round(image_size * ratio)),
        mean=tuple(transform.mean),
        std=tuple(transform.std),
    )


# ---------------------------------------------------------------------------
# Weights.
# ---------------------------------------------------------------------------


def expected_imagenet_path(name: str) -> tuple[Path, str]:
    """Where torchvision caches a backbone's default ImageNet weights, and their URL.

    Returns
    -------
    path : pathlib.Path
        ``torch.hub.get_dir()/checkpoints/<file name of the URL>``; ``get_dir`` honours
        ``TORCH_HOME`` (default ``~/.cache/torch``) and ``torch.hub.set_dir``.
    url : str
        Where torchvision would download the file from (this module never does).
    """
    entry = _entry(name)
    if entry.imagenet is None:
        raise ValueError(f"backbone {name!r} has no ImageNet weights")
    url = entry.imagenet.DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url), url


def _resolve_weights(config: BackboneConfig) -> Path | None:
    """The weights file a config names, checked to exist; None for random weights."""
    if config.weights == "none":
        return None
    if config.weights == "imagenet":
        path, url = expected_imagenet_path(config.name)
        if not path.is_file():
            raise WeightsNotFoundError(
                f"ImageNet weights for {config.name!r} not found at {path} (never downloaded "
                f"here). Either copy the file from a machine with internet access to exactly "
                f"that path (download URL: {url}; torchvision caches it there, TORCH_HOME "
                f"moves the folder), or set weights to the path of a local .pth/.pt "
                f"state-dict file, or use weights: none for random weights."
            )
        return path
    if config.weights == "fixture":
        path = FIXTURE_DIR / f"{config.name}.pt"
        if not path.is_file():
            raise WeightsNotFoundError(
                f"fixture weights for {config.name!r} not found at {path}; "
                f"recreate them with `manage.py train_fixture_backbone`."
            )
        return path
    path = Path(config.weights).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(
            f"weights file {path} does not exist; give the path of a local .pth/.pt "
            f"state-dict file, weights: imagenet, or weights: none for random weights."
        )
    return path


# Old torchvision DenseNet checkpoints name layers "norm.1"; the module is now "norm1". The
# pattern is torchvision's, plus num_batches_tracked for files re-saved by newer torch.
_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def _read_weights(path: Path, config: BackboneConfig) -> tuple[dict[str, torch.Tensor], dict]:
    """State dict and metadata (empty for a plain state dict) of a weights file."""
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a damaged or foreign file
        raise ValueError(f"cannot read weights file {path}: {exc}") from exc
    metadata: dict[str, Any] = {}
    if isinstance(content, dict) and content.get("format") == FILE_FORMAT:
        if content.get("architecture") != config.name:
            raise ValueError(
                f"{path} holds {content.get('architecture')!r} weights, not {config.name!r}"
            )
        if config.name == "synthnet" and content.get("version") != SYNTHNET_VERSION:
            raise ValueError(
                f"{path} holds synthnet version {content.get('version')!r}; this code builds "
                f"{SYNTHNET_VERSION!r}; retrain with `manage.py train_fixture_backbone`"
            )
        content, metadata = content["state_dict"], dict(content["metadata"])
    if not isinstance(content, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in content.values()
    ):
        raise ValueError(f"{path} is not a state dict (a mapping of names to tensors)")
    state = dict(content)
    if config.name.startswith("densenet"):
        for key in list(state):
            match = _DENSENET_KEY.match(key)
            if match:
                state[match.group(1) + match.group(2)] = state.pop(key)
    return state, metadata


def _check_hub_hash(path: Path, sha256: str) -> None:
    # torch.hub names its files <name>-<first hex digits of the sha256>.<ext>; a truncated
    # copy would otherwise fail later with a confusing unpickling error, or not at all.
    match = re.search(r"-([a-f0-9]{6,})\.", path.name)
    if match and not sha256.startswith(match.group(1)):
        raise ValueError(
            f"{path} has sha256 {sha256}, which does not start with {match.group(1)} as its name "
            f"says: the file is damaged; copy it again."
        )


# ---------------------------------------------------------------------------
# The built backbone.
# ---------------------------------------------------------------------------


class _Flatten(nn.Module):
    """Runs a feature extractor and flattens its single output to (B, D)."""

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.extractor(x)["out"], 1)


class _Single(nn.Module):
    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)["out"]


@dataclass(frozen=True, eq=False)
class Backbone:
    """A network cut at a layer, with the preprocessing and identity of its weights.

    Attributes
    ----------
    model : torch.nn.Module
        In eval mode; maps a float batch of shape (B, 3, H, W), preprocessed as below, to
        features of shape (B, dim) (the layer's output, flattened, non-negative).
    preprocess : ImagePreprocess
        PIL image -> tensor of shape (3, image_size, image_size).
    dim : int
        Feature dimension D.
    config : BackboneConfig
    weights_sha256 : str
        Hex sha256 of the weights file, or ``"random-init"`` for ``weights="none"``.
    weights_info : dict
        Where the weights came from (``path``, ``url`` or the fixture's training metadata).
    network : torch.nn.Module
        The whole network (eval mode) whose weights ``model`` shares.
    feature_map_node : str
        ``torch.fx`` node of :attr:`feature_map_model`.
    """

    model: nn.Module
    preprocess: ImagePreprocess
    dim: int
    config: BackboneConfig
    weights_sha256: str
    weights_info: dict[str, Any] = field(default_factory=dict)
    network: nn.Module | None = field(default=None, repr=False)
    feature_map_node: str = ""

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Features of shape (B, dim) for a preprocessed batch of shape (B, 3, H, W)."""
        return self.model(batch)

    @cached_property
    def feature_map_model(self) -> nn.Module:
        """Module mapping (B, 3, H, W) to the last spatial feature map, shape (B, C, h, w).

        ``layer4`` for ResNets, ``features.35`` (last conv ReLU) for VGG19, the final ReLU for
        DenseNet, ``stage3`` for SynthNet: what saliency methods need. Shares the weights (and
        so the device and memory format) of :attr:`model`; traced on first use.
        """
        extractor = create_feature_extractor(self.network, {self.feature_map_node: "out"})
        return _Single(extractor).eval()

    def feature_map(self, batch: torch.Tensor) -> torch.Tensor:
        """Last spatial feature map, shape (B, C, h, w), for a batch of shape (B, 3, H, W)."""
        return self.feature_map_model(batch)

    def get_config(self) -> dict[str, Any]:
        """``config.to_dict()`` plus ``weights_sha256``: what to store beside features."""
        return {**self.config.to_dict(), "weights_sha256": self.weights_sha256}


def build_backbone(config: BackboneConfig | None = None) -> Backbone:
    """Build the backbone a config describes, never downloading anything.

    Parameters
    ----------
    config : BackboneConfig, optional
        Defaults to ``BackboneConfig()`` (ResNet50 avgpool, ImageNet weights, 224 px).

    Returns
    -------
    Backbone

    Raises
    ------
    WeightsNotFoundError
        If the weights file is missing; the message names the expected path, the download URL
        for ImageNet weights, and the alternatives.
    ValueError
        If the weights file cannot be read, does not fit the architecture, or (for ImageNet
        files) does not match the hash in its name; or if ``image_size`` is too small for
        the network.
    """
    config = BackboneConfig() if config is None else config
    entry = _entry(config.name)
    path = _resolve_weights(config)

    with torch.random.fork_rng(devices=[]):
        # Random init from a fixed seed, so that "random-init" is one set of weights and
        # the global RNG of the caller is left alone.
        torch.manual_seed(_RANDOM_INIT_SEED)
        network = entry.builder()

    metadata: dict[str, Any] = {}
    if path is None:
        sha256 = RANDOM_INIT
        info: dict[str, Any] = {"source": "none", "seed": _RANDOM_INIT_SEED}
    else:
        sha256 = file_sha256(path)
        if config.weights == "imagenet":
            _check_hub_hash(path, sha256)
        state, metadata = _read_weights(path, config)
        try:
            network.load_state_dict(state)
        except RuntimeError as exc:
            detail = str(exc) if len(str(exc)) <= 600 else str(exc)[:600] + " ..."
            raise ValueError(f"weights {path} do not fit {config.name!r}: {detail}") from exc
        info = {"source": config.weights, "path": str(path)}
        if config.weights == "imagenet":
            info.update(url=entry.imagenet.DEFAULT.url, enum=str(entry.imagenet.DEFAULT))
        if metadata:
            info["metadata"] = metadata
    network.eval()

    if config.name == "synthnet":
        # The fixture's own normalisation travels in its file; no crop, since it was trained
        # on whole images (crops of 85-100 % of the side).
        preprocess = ImagePreprocess(
            image_size=config.image_size,
            resize_size=config.image_size,
            mean=tuple(float(v) for v in metadata.get("mean", SYNTHNET_MEAN)),
            std=tuple(float(v) for v in metadata.get("std", SYNTHNET_STD)),
        )
    elif entry.imagenet is not None:
        preprocess = _imagenet_preprocess(entry, config.image_size)
    else:  # a future architecture without ImageNet weights: plain ImageNet statistics
        preprocess = ImagePreprocess(
            config.image_size,
            round(config.image_size * _IMAGENET_RESIZE_RATIO),
            _IMAGENET_MEAN,
            _IMAGENET_STD,
        )

    model = _Flatten(create_feature_extractor(network, {entry.layers[config.layer]: "out"}))
    model.eval()
    try:
        with torch.inference_mode():
            probe = torch.zeros(1, 3, config.image_size, config.image_size)
            dim = int(model(probe).shape[1])
    except RuntimeError as exc:
        raise ValueError(
            f"image_size {config.image_size} is too small for {config.name!r}: {exc}"
        ) from exc
    return Backbone(
        model=model,
        preprocess=preprocess,
        dim=dim,
        config=config,
        weights_sha256=sha256,
        weights_info=info,
        network=network,
        feature_map_node=entry.feature_map_node,
    )


# ---------------------------------------------------------------------------
# Normalisation.
# ---------------------------------------------------------------------------


@overload
def features_l1_normalise(x: torch.Tensor) -> torch.Tensor: ...
@overload
def features_l1_normalise(x: np.ndarray) -> np.ndarray: ...


def features_l1_normalise(x):
    """Scale each row to sum to 1, making features histograms for the intersection kernel.

    Parameters
    ----------
    x : Tensor or ndarray of shape (n, D), floating, non-negative, finite

    Returns
    -------
    Tensor or ndarray of shape (n, D), same type and dtype
        Each row divided by its sum; all-zero rows stay zero. A new array; ``x`` is not
        modified.

    Raises
    ------
    ValueError
        If ``x`` is not 2-D floating, holds NaN/inf, or holds a negative value. Negative
        values are rejected rather than clipped: the registered layers all follow a ReLU, so
        a negative value means a wrong layer or corrupted weights, which clipping would hide
        (the histogram intersection of seed 000 is meaningless for signed vectors).
    """
    is_tensor = isinstance(x, torch.Tensor)
    if not is_tensor:
        x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D (n, D), got shape {tuple(x.shape)}")
    if (is_tensor and not x.is_floating_point()) or (
        not is_tensor and not np.issubdtype(x.dtype, np.floating)
    ):
        raise ValueError(f"features must be floating point, got {x.dtype}")
    finite = bool(torch.isfinite(x).all()) if is_tensor else bool(np.isfinite(x).all())
    if not finite:
        raise ValueError("features hold NaN or infinite values")
    empty = (x.numel() if is_tensor else x.size) == 0
    smallest = 0.0 if empty else float(x.min())
    if smallest < 0:
        raise ValueError(
            f"features must be non-negative to be L1-normalised as histograms (minimum "
            f"{smallest}); use a layer after a ReLU, such as avgpool"
        )
    sums = x.sum(dim=1, keepdim=True) if is_tensor else x.sum(axis=1, keepdims=True)
    # Dividing an all-zero row by 1 keeps it zero instead of making it NaN.
    if is_tensor:
        return x / torch.where(sums > 0, sums, torch.ones_like(sums))
    return x / np.where(sums > 0, sums, np.ones_like(sums))
