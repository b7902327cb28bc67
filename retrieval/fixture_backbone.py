"""SynthNet: the small CNN trained on the synthetic archive and shipped as a test fixture.

ImageNet weights cannot be downloaded on the project's machines, and a randomly initialised
ResNet50 says little about whether retrieval, saliency or the study pages behave sensibly. So
the project ships a small network trained on the synthetic archive of :mod:`retrieval.synthetic`
(``fixtures/backbones/synthnet.pt``, about 2 MB): its ``avgpool`` features separate the 24
synthetic classes the way ImageNet features separate COCO's, at a fraction of the cost.

No Django here. :func:`train_synthnet` is deterministic on CPU for a given seed, archive and
torch build; ``manage.py train_fixture_backbone`` wraps it.

The saved file is one ``torch.save`` dictionary readable with ``torch.load(weights_only=True)``::

    {"format": "studyplatform-backbone", "architecture": "synthnet",
     "version": "synthnet-1", "state_dict": {...float16 tensors...}, "metadata": {...}}

``metadata`` holds the preprocessing (``image_size``, ``mean``, ``std``), the class names and
category ids, the training seed, epochs and archive, the final training loss and the mAP on a
held-out split. :func:`retrieval.backbones.build_backbone` reads the preprocessing from it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

__all__ = [
    "FILE_FORMAT",
    "SYNTHNET_MEAN",
    "SYNTHNET_STD",
    "SYNTHNET_VERSION",
    "SynthNet",
    "average_precision",
    "load_synthnet_file",
    "read_multilabel_targets",
    "train_synthnet",
]

FILE_FORMAT = "studyplatform-backbone"
# Bump when the layers of SynthNet change: a file of another version is refused on load.
SYNTHNET_VERSION = "synthnet-1"
# Normalisation for an untrained SynthNet (``weights="none"``); a trained file carries the
# per-channel statistics of its own training images instead.
SYNTHNET_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
SYNTHNET_STD: tuple[float, float, float] = (0.25, 0.25, 0.25)

# Fraction of the archive held out for the mAP reported in the metadata.
_HELD_OUT_FRACTION = 0.1
# Augmentation: a random square crop of this fraction of the side, then a horizontal flip
# with probability 1/2. Vertical flips are left out: some classes differ by orientation
# (fan opens upwards, goblet stands on its foot).
_CROP_RANGE = (0.85, 1.0)


def _conv_block(c_in: int, c_out: int, *, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SynthNet(nn.Module):
    """Small multi-label CNN for the 24 synthetic classes.

    Five 3x3 conv + BatchNorm + ReLU blocks, total stride 16, about 1.0 M parameters:

    ========  ==============================  ========================
    module    operation                       output for 128 px input
    ========  ==============================  ========================
    stem      conv 3->32, stride 2            (B, 32, 64, 64)
    stage1    max-pool 2, conv 32->64         (B, 64, 32, 32)
    stage2    max-pool 2, conv 64->128        (B, 128, 16, 16)
    stage3    max-pool 2, conv 128->256 x2    (B, 256, 8, 8)
    avgpool   global average pool             (B, 256, 1, 1)
    head      linear 256->num_classes         (B, num_classes) logits
    ========  ==============================  ========================

    The pooled layer is called ``avgpool`` (not ``pool``) so that every backbone of
    :mod:`retrieval.backbones` has its retrieval features under the same layer name.

    Parameters
    ----------
    num_classes : int, default 24
        Width of the multi-label head.
    """

    def __init__(self, *, num_classes: int = 24) -> None:
        super().__init__()
        self.stem = _conv_block(3, 32, stride=2)
        self.stage1 = nn.Sequential(nn.MaxPool2d(2), _conv_block(32, 64))
        self.stage2 = nn.Sequential(nn.MaxPool2d(2), _conv_block(64, 128))
        self.stage3 = nn.Sequential(nn.MaxPool2d(2), _conv_block(128, 256), _conv_block(256, 256))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(256, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map a batch of shape (B, 3, H, W), H, W >= 16, to logits of shape (B, num_classes)."""
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.head(torch.flatten(self.avgpool(x), 1))


# ---------------------------------------------------------------------------
# Data.
# ---------------------------------------------------------------------------


def read_multilabel_targets(
    archive_dir: str | Path,
) -> tuple[list[Path], np.ndarray, list[int], list[str]]:
    """Images of a COCO-format archive and the set of classes annotated in each.

    Parameters
    ----------
    archive_dir : path-like
        Folder holding ``instances.json`` and ``images/``.

    Returns
    -------
    paths : list of pathlib.Path
        ``archive_dir / "images" / file_name`` in the order of the file's ``images``.
    targets : ndarray of shape (n_images, n_classes), float32
        1 where the class is annotated in the image at least once, else 0.
    category_ids : list of int
        COCO category id of each target column, ascending.
    names : list of str
        Category name of each target column.
    """
    archive_dir = Path(archive_dir)
    document = json.loads((archive_dir / "instances.json").read_text(encoding="utf-8"))
    categories = sorted(document["categories"], key=lambda c: c["id"])
    column = {c["id"]: j for j, c in enumerate(categories)}
    row = {image["id"]: i for i, image in enumerate(document["images"])}
    targets = np.zeros((len(row), len(column)), dtype=np.float32)
    for annotation in document["annotations"]:
        targets[row[annotation["image_id"]], column[annotation["category_id"]]] = 1.0
    paths = [archive_dir / "images" / image["file_name"] for image in document["images"]]
    return paths, targets, [c["id"] for c in categories], [c["name"] for c in categories]


def _to_tensor(image: Image.Image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0
    array = (array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class _ArchiveImages(torch.utils.data.Dataset):
    """Images resized to ``image_size``; random crop + flip when ``augment``.

    The augmentation of image ``i`` in epoch ``e`` comes from ``default_rng([seed, e, i])``, so
    it does not depend on the order or the process in which images are loaded.
    """

    def __init__(self, paths, targets, *, image_size, mean, std, augment, seed):
        self.paths, self.targets = paths, targets
        self.image_size, self.mean, self.std = image_size, mean, std
        self.augment, self.seed, self.epoch = augment, seed, 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        with Image.open(self.paths[index]) as opened:
            image = opened.convert("RGB")
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            width, height = image.size
            side = min(width, height) * rng.uniform(*_CROP_RANGE)
            left = rng.uniform(0, width - side)
            top = rng.uniform(0, height - side)
            image = image.resize(
                (self.image_size, self.image_size),
                Image.Resampling.BILINEAR,
                box=(left, top, left + side, top + side),
            )
            if rng.random() < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            image = image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        return _to_tensor(image, self.mean, self.std), torch.from_numpy(self.targets[index])


def _channel_statistics(paths: Sequence[Path], image_size: int) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation, in [0, 1] units, of images resized as in training."""
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for path in paths:
        with Image.open(path) as opened:
            image = opened.convert("RGB").resize(
                (image_size, image_size), Image.Resampling.BILINEAR
            )
        pixels = np.asarray(image, dtype=np.float64).reshape(-1, 3) / 255.0
        total += pixels.sum(axis=0)
        total_sq += (pixels**2).sum(axis=0)
        count += len(pixels)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-12))
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]


# ---------------------------------------------------------------------------
# Metrics.
# ---------------------------------------------------------------------------


def average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Average precision of each column (class), as in multi-label mAP.

    Parameters
    ----------
    scores : ndarray of shape (n_samples, n_classes)
        Higher means more likely positive.
    targets : ndarray of shape (n_samples, n_classes)
        1 for positives, 0 for negatives.

    Returns
    -------
    ndarray of shape (n_classes,), float64
        Mean of the precision at the rank of each positive, in [0, 1]; NaN for a column
        without positives. Ties are broken by sample order (stable sort).
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets) > 0
    if scores.shape != targets.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and targets {targets.shape} must be equal 2-D")
    result = np.full(scores.shape[1], np.nan)
    for j in range(scores.shape[1]):
        hits = targets[np.argsort(-scores[:, j], kind="stable"), j]
        if hits.any():
            precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
            result[j] = precision[hits].mean()
    return result


def _evaluate(model: nn.Module, loader: torch.utils.data.DataLoader) -> tuple[float, float]:
    """Mean BCE loss and macro mAP (over classes with a positive) of ``model`` on ``loader``."""
    model.eval()
    logits, targets = [], []
    with torch.inference_mode():
        for images, labels in loader:
            logits.append(model(images))
            targets.append(labels)
    all_logits, all_targets = torch.cat(logits), torch.cat(targets)
    loss = float(F.binary_cross_entropy_with_logits(all_logits, all_targets))
    ap = average_precision(all_logits.numpy(), all_targets.numpy())
    return loss, float(np.nanmean(ap))


# ---------------------------------------------------------------------------
# Training and the file format.
# ---------------------------------------------------------------------------


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def train_synthnet(
    archive_dir: str | Path,
    out_path: str | Path,
    *,
    epochs: int,
    seed: int,
    image_size: int = 128,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train SynthNet on a synthetic archive and save weights and metadata to one file.

    The loss is binary cross-entropy on the multi-label targets (an image's label set is the
    set of classes annotated in it), optimised with AdamW and a one-cycle learning-rate
    schedule. A seeded 10 % of the images is held out for the reported mAP. Runs on CPU in a
    single process with deterministic algorithms, so the same arguments, archive and torch
    build give the same weights.

    Parameters
    ----------
    archive_dir : path-like
        COCO-format archive (``instances.json`` + ``images/``), for example from
        :func:`retrieval.synthetic.generate_archive`.
    out_path : path-like
        File to write (``.pt``); parent folders are created; replaced atomically.
    epochs : int
        Passes over the training split, >= 1.
    seed : int
        Seeds the initialisation, the split, the shuffling and the augmentation.
    image_size : int, default 128
        Side in pixels the images are resized to, >= 32.
    batch_size : int, default 64
    learning_rate : float, default 3e-3
        Peak learning rate of the one-cycle schedule.
    progress : callable, optional
        ``progress(step, total_steps, loss)`` after each optimisation step, with the batch's
        training loss.

    Returns
    -------
    dict
        The saved ``metadata`` plus ``path`` (str), ``bytes`` (file size), ``sha256`` (of the
        file) and ``seconds`` (wall-clock training time, not saved in the file so that
        retraining reproduces it byte for byte).

    Notes
    -----
    Side effect: sets torch's deterministic-algorithms flag while training (restored
    afterwards). torch's global RNG is forked, so the caller's random state is unchanged.
    """
    epochs = _check_positive_int("epochs", epochs)
    batch_size = _check_positive_int("batch_size", batch_size)
    image_size = _check_positive_int("image_size", image_size)
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32, got {image_size}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    started = time.perf_counter()

    paths, targets, category_ids, names = read_multilabel_targets(archive_dir)
    if len(paths) < 10:
        raise ValueError(f"need at least 10 images to train and hold out, got {len(paths)}")
    order = np.random.default_rng(seed).permutation(len(paths))
    n_held_out = max(1, round(len(paths) * _HELD_OUT_FRACTION))
    held_out, train = np.sort(order[:n_held_out]), np.sort(order[n_held_out:])
    mean, std = _channel_statistics([paths[i] for i in train], image_size)

    def dataset(rows: np.ndarray, augment: bool) -> _ArchiveImages:
        return _ArchiveImages(
            [paths[i] for i in rows],
            targets[rows],
            image_size=image_size,
            mean=mean,
            std=std,
            augment=augment,
            seed=seed,
        )

    train_set = dataset(train, augment=True)
    shuffle = torch.Generator().manual_seed(seed)
    # Single process: the results must not depend on worker scheduling, and the images are
    # small enough that decoding is a few percent of a step.
    train_loader = torch.utils.data.DataLoader(
        train_set, batch_size=batch_size, shuffle=True, generator=shuffle, drop_last=True
    )
    if len(train_loader) == 0:
        raise ValueError(f"batch_size {batch_size} exceeds the {len(train)} training images")
    held_out_loader = torch.utils.data.DataLoader(
        dataset(held_out, augment=False), batch_size=batch_size
    )

    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        # A forked RNG: the seed drives this training without moving the caller's RNG.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = SynthNet(num_classes=len(category_ids))
            optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
            total_steps = epochs * len(train_loader)
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimiser, max_lr=learning_rate, total_steps=total_steps, pct_start=0.2
            )
            step = 0
            epoch_loss = math.nan
            for epoch in range(epochs):
                train_set.epoch = epoch
                model.train()
                losses = []
                for images, labels in train_loader:
                    loss = F.binary_cross_entropy_with_logits(model(images), labels)
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    schedule.step()
                    step += 1
                    losses.append(loss.item())
                    if progress is not None:
                        progress(step, total_steps, losses[-1])
                epoch_loss = float(np.mean(losses))

            # Evaluate the weights as they are shipped, i.e. after rounding to float16.
            state = {
                key: value.half() if value.is_floating_point() else value.clone()
                for key, value in model.state_dict().items()
            }
            model.load_state_dict(state)
            held_out_loss, held_out_map = _evaluate(model, held_out_loader)
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)

    metadata: dict[str, Any] = {
        "image_size": image_size,
        "mean": mean,
        "std": std,
        "category_ids": category_ids,
        "classes": names,
        "seed": int(seed),
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": float(learning_rate),
        "train_images": len(train),
        "held_out_images": len(held_out),
        "archive": _archive_description(archive_dir),
        "final_train_loss": round(epoch_loss, 6),
        "held_out_loss": round(held_out_loss, 6),
        "held_out_map": round(held_out_map, 6),
        "torch_version": str(torch.__version__),
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _save_synthnet_file(out_path, state, metadata)
    return {
        **metadata,
        "path": str(out_path),
        "bytes": out_path.stat().st_size,
        "sha256": hashlib.sha256(out_path.read_bytes()).hexdigest(),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _save_synthnet_file(
    out_path: Path, state: dict[str, torch.Tensor], metadata: dict[str, Any]
) -> None:
    """Write the file atomically, with bytes that do not depend on its name."""
    # torch.save names the zip records after the file it writes to; saving to a buffer names
    # them "archive" instead, so the same weights give the same sha256 wherever they are saved.
    buffer = io.BytesIO()
    torch.save(
        {
            "format": FILE_FORMAT,
            "architecture": "synthnet",
            "version": SYNTHNET_VERSION,
            "state_dict": state,
            "metadata": metadata,
        },
        buffer,
    )
    partial = out_path.with_name(out_path.name + ".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(out_path)


def _archive_description(archive_dir: str | Path) -> str:
    """The ``info.description`` of the archive (names its seed and size for generated ones)."""
    document = json.loads((Path(archive_dir) / "instances.json").read_text(encoding="utf-8"))
    return str(document.get("info", {}).get("description", ""))


def load_synthnet_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`train_synthnet`.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    state_dict : dict of str to Tensor
        As saved (floating tensors in float16).
    metadata : dict
        See :func:`train_synthnet`.

    Raises
    ------
    ValueError
        If the file is not a SynthNet file of version :data:`SYNTHNET_VERSION`.
    """
    content = torch.load(path, map_location="cpu", weights_only=True)
    if not (isinstance(content, dict) and content.get("format") == FILE_FORMAT):
        raise ValueError(f"{path} is not a {FILE_FORMAT} file")
    if content.get("architecture") != "synthnet" or content.get("version") != SYNTHNET_VERSION:
        raise ValueError(
            f"{path} holds {content.get('architecture')!r} version {content.get('version')!r}; "
            f"this code reads synthnet version {SYNTHNET_VERSION!r}"
        )
    return content["state_dict"], content["metadata"]
