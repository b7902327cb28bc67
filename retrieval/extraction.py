"""Batched, resumable feature extraction into one memory-mapped ``.npy`` file.

No Django here; the feature services and tasks of ``retrieval`` call :func:`extract_features`
with a backbone from :func:`retrieval.backbones.build_backbone`.

Row ``i`` of the output is the L1-normalised feature vector of ``image_paths[i]``. Beside the
array, ``<out_path>.progress.json`` records how many rows are done, which images failed, and the
identity of the run (backbone config, weights hash, image list, precision). The sidecar is
replaced atomically after each batch's rows are flushed, so a process killed at any moment
leaves a file that a second call with the same arguments continues from the first unfinished
row; rows computed but not yet recorded are simply computed again, with the same result. A call
whose identity differs from the sidecar's is refused, so one file never mixes the features of
two models or two image lists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from retrieval.backbones import Backbone, features_l1_normalise
from retrieval.feature_files import (
    SIDECAR_FORMAT,
    extraction_state,
    load_features,
    sidecar_path,
    write_state,
)

__all__ = [
    "PRECISIONS",
    "ExtractionResult",
    "FailedImage",
    "extract_features",
    "extraction_state",
    "load_features",
    "sidecar_path",
]

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "fp16")


class FailedImage(NamedTuple):
    """An image that could not be decoded; its row stays all-zero."""

    row: int
    path: str
    reason: str


@dataclass(frozen=True)
class ExtractionResult:
    """Outcome of :func:`extract_features`.

    Attributes
    ----------
    path : pathlib.Path
        The ``.npy`` file, float32 of shape (n_rows, dim).
    n_rows : int
        Number of images (rows of the array).
    dim : int
        Feature dimension.
    rows_done : int
        Rows written so far; equals ``n_rows`` unless ``should_stop`` stopped the run.
    failed : tuple of FailedImage
        Images that could not be decoded, over all runs on this file, by row.
    seconds : float
        Wall-clock time of this call.
    backbone_config : dict
        ``BackboneConfig.to_dict()`` of the backbone used.
    weights_sha256 : str
    precision : str
    """

    path: Path
    n_rows: int
    dim: int
    rows_done: int
    failed: tuple[FailedImage, ...]
    seconds: float
    backbone_config: dict[str, Any]
    weights_sha256: str
    precision: str

    @property
    def complete(self) -> bool:
        return self.rows_done == self.n_rows


class _ImageRows(torch.utils.data.Dataset):
    """Rows ``start..n-1``: ``(row, tensor or None, reason)``; decoding errors are caught."""

    def __init__(self, paths: Sequence[str], preprocess: Callable, start: int) -> None:
        self.paths, self.preprocess, self.start = paths, preprocess, start

    def __len__(self) -> int:
        return len(self.paths) - self.start

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, str]:
        row = self.start + index
        try:
            with Image.open(self.paths[row]) as opened:
                image = opened.convert("RGB")
        except Exception as exc:  # decoders raise many types for a broken file; never crash
            return row, None, f"{type(exc).__name__}: {exc}"
        return row, self.preprocess(image), ""


def _collate(items: list[tuple[int, torch.Tensor | None, str]]):
    rows = [row for row, _, _ in items]
    ok = [(row, tensor) for row, tensor, _ in items if tensor is not None]
    failed = [(row, reason) for row, tensor, reason in items if tensor is None]
    batch = torch.stack([tensor for _, tensor in ok]) if ok else None
    return rows, [row for row, _ in ok], batch, failed


def _identity(backbone: Backbone, paths: list[str], precision: str) -> dict[str, Any]:
    listing = json.dumps(paths, ensure_ascii=False).encode("utf-8")
    return {
        "backbone": backbone.config.to_dict(),
        "weights_sha256": backbone.weights_sha256,
        "n_rows": len(paths),
        "dim": int(backbone.dim),
        "image_list_sha256": hashlib.sha256(listing).hexdigest(),
        "precision": precision,
        "dtype": "float32",
    }


def _result(out_path, identity, state, started, precision) -> ExtractionResult:
    return ExtractionResult(
        path=out_path,
        n_rows=identity["n_rows"],
        dim=identity["dim"],
        rows_done=state["rows_done"],
        failed=tuple(FailedImage(*item) for item in state["failed"]),
        seconds=time.perf_counter() - started,
        backbone_config=dict(identity["backbone"]),
        weights_sha256=identity["weights_sha256"],
        precision=precision,
    )


def extract_features(
    backbone: Backbone,
    image_paths: Sequence[str | os.PathLike[str]],
    out_path: str | os.PathLike[str],
    *,
    batch_size: int = 32,
    num_workers: int = 0,
    precision: str = "fp32",
    device: str | torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ExtractionResult:
    """Compute L1-normalised features of images into a memory-mapped ``.npy``; resumable.

    Parameters
    ----------
    backbone : Backbone
        From :func:`retrieval.backbones.build_backbone`.
    image_paths : sequence of path-like, non-empty
        Row ``i`` of the output holds ``image_paths[i]``. A resumed run must pass the same
        list (compared as strings, order included).
    out_path : path-like
        The ``.npy`` file, float32 of shape (len(image_paths), backbone.dim), created with
        ``numpy.lib.format.open_memmap``; ``<out_path>.progress.json`` is written beside it.
    batch_size : int, default 32
    num_workers : int, default 0
        DataLoader worker processes for decoding and preprocessing (0: in this process).
    precision : {"fp32", "bf16", "fp16"}, default "fp32"
        ``"bf16"`` runs the network under bfloat16 autocast (CPU or CUDA), ``"fp16"`` under
        float16 autocast (CUDA only). Features are stored as float32 in every case.
    device : str or torch.device, optional
        Defaults to ``"cuda"`` when available, else ``"cpu"``.
    progress : callable, optional
        ``progress(rows_done, n_rows)`` after each batch is written.
    should_stop : callable, optional
        Checked after each batch; when it returns True the run stops cleanly, with everything
        written so far recorded (``result.complete`` is then False).

    Returns
    -------
    ExtractionResult

    Raises
    ------
    ValueError
        If an argument is invalid; if the sidecar belongs to another backbone config, weights
        hash, image list or precision; if ``out_path`` exists without a sidecar (a file of
        unknown origin is never overwritten); or if the array does not match its sidecar.

    Notes
    -----
    An image that cannot be opened or decoded is logged (warning) and skipped: its row stays
    all-zero and it is listed in ``result.failed`` and the sidecar. A complete file is not
    recomputed: a repeated call returns its result at once.

    Side effects: moves ``backbone.model`` (and so ``backbone.feature_map_model``, which shares
    its weights) to ``device`` in ``channels_last`` memory format.
    """
    if not isinstance(backbone, Backbone):
        raise ValueError(f"backbone must be a Backbone, got {type(backbone).__name__}")
    paths = [os.fspath(p) for p in image_paths]
    if not paths:
        raise ValueError("image_paths is empty")
    for name, value, minimum in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    device = torch.device(device if device is not None else _default_device())
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a CUDA device; use 'bf16' on CPU")

    started = time.perf_counter()
    out_path = Path(out_path)
    identity = _identity(backbone, paths, precision)
    n_rows, dim = identity["n_rows"], identity["dim"]
    state = extraction_state(out_path)

    if state is None:
        if out_path.exists():
            raise ValueError(
                f"{out_path} exists but has no {sidecar_path(out_path).name}; refusing to "
                f"overwrite a feature file of unknown origin"
            )
        state = {
            "format": SIDECAR_FORMAT,
            "identity": identity,
            "rows_done": 0,
            "complete": False,
            "failed": [],
            "seconds": 0.0,
        }
        out_path.parent.mkdir(parents=True, exist_ok=True)
        # Sidecar first: a crash before the array exists leaves "0 rows done", which a
        # resumed run handles by creating the array.
        write_state(out_path, state)
    else:
        _check_identity(out_path, state["identity"], identity)
        if state["complete"]:
            return _result(out_path, identity, state, started, precision)

    if state["rows_done"] == 0:
        array = np.lib.format.open_memmap(
            out_path, mode="w+", dtype=np.float32, shape=(n_rows, dim)
        )
    else:
        try:
            array = np.lib.format.open_memmap(out_path, mode="r+")
        except (OSError, ValueError) as exc:
            raise ValueError(
                f"cannot reopen {out_path} ({exc}) although its sidecar records "
                f"{state['rows_done']} rows; delete both files to start over"
            ) from exc
        if array.shape != (n_rows, dim) or array.dtype != np.float32:
            raise ValueError(
                f"{out_path} holds {array.dtype} {array.shape}, its sidecar expects float32 "
                f"{(n_rows, dim)}; delete both files to start over"
            )

    model = backbone.model.to(device, memory_format=torch.channels_last)
    model.eval()
    if precision == "fp32":
        autocast: contextlib.AbstractContextManager = contextlib.nullcontext()
    else:
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        autocast = torch.autocast(device_type=device.type, dtype=dtype)
    loader = torch.utils.data.DataLoader(
        _ImageRows(paths, backbone.preprocess, state["rows_done"]),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
    )

    run_started = time.perf_counter()
    previous_seconds = float(state["seconds"])
    try:
        with torch.inference_mode():
            for rows, ok_rows, batch, failed in loader:
                block = np.zeros((len(rows), dim), dtype=np.float32)
                if batch is not None:
                    batch = batch.to(device, memory_format=torch.channels_last, non_blocking=True)
                    with autocast:
                        features = model(batch)
                    features = features_l1_normalise(features.float()).cpu().numpy()
                    block[np.asarray(ok_rows) - rows[0]] = features
                array[rows[0] : rows[-1] + 1] = block
                # Rows reach the file before the sidecar says they are done.
                array.flush()
                for row, reason in failed:
                    logger.warning("skipping image %d (%s): %s", row, paths[row], reason)
                    state["failed"].append([row, paths[row], reason])
                state["rows_done"] = rows[-1] + 1
                state["complete"] = state["rows_done"] == n_rows
                state["seconds"] = previous_seconds + time.perf_counter() - run_started
                write_state(out_path, state)
                if progress is not None:
                    progress(state["rows_done"], n_rows)
                if should_stop is not None and not state["complete"] and should_stop():
                    break
    finally:
        del array
    return _result(out_path, identity, state, started, precision)


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _check_identity(out_path: Path, stored: dict[str, Any], wanted: dict[str, Any]) -> None:
    differing = sorted(
        key for key in set(stored) | set(wanted) if stored.get(key) != wanted.get(key)
    )
    if differing:
        details = "; ".join(
            f"{key}: file has {stored.get(key)!r}, call has {wanted.get(key)!r}"
            for key in differing
        )
        raise ValueError(
            f"{out_path} was extracted with different settings ({details}); features of two "
            f"runs are never mixed: use another out_path or delete the file and its sidecar"
        )
