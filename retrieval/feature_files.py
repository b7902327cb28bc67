"""Feature files on disk, read without torch: the array, its progress sidecar and its state.

:mod:`retrieval.extraction` writes them (and needs torch); everything that only reads features
(search, the HIT pages, the analysis) imports this module instead. No Django here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SIDECAR_FORMAT", "extraction_state", "load_features", "sidecar_path", "write_state"]

SIDECAR_FORMAT = "studyplatform-features-1"


def sidecar_path(out_path: str | os.PathLike[str]) -> Path:
    """``<out_path>.progress.json``."""
    return Path(os.fspath(out_path) + ".progress.json")


def extraction_state(out_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar of a feature file as a dict, or None if there is none.

    Keys: ``format``, ``identity`` (``backbone``, ``weights_sha256``, ``n_rows``, ``dim``,
    ``image_list_sha256``, ``precision``, ``dtype``), ``rows_done``, ``complete``, ``failed``
    (list of ``[row, path, reason]``) and ``seconds`` (summed over all runs).
    """
    path = sidecar_path(out_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    state = json.loads(text)
    if state.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"{path} is not a feature progress file ({SIDECAR_FORMAT})")
    return state


def write_state(out_path: Path, state: dict[str, Any]) -> None:
    # Temp file + fsync + rename: a reader (or a resumed run) sees the old or the new
    # sidecar, never half of one.
    path = sidecar_path(out_path)
    partial = path.with_name(path.name + ".tmp")
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(state, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def load_features(path: str | os.PathLike[str], *, allow_incomplete: bool = False) -> np.memmap:
    """Open a feature file read-only, without reading it into memory.

    Parameters
    ----------
    path : path-like
        An ``.npy`` written by :func:`extract_features`.
    allow_incomplete : bool, default False
        Open a file whose sidecar says the extraction has not finished (unfinished rows are
        zero).

    Returns
    -------
    numpy.memmap of shape (n_images, n_dims), float32, read-only
        Row ``i`` is the L1-normalised feature of image ``i``; rows of failed images are zero.

    Raises
    ------
    ValueError
        If the sidecar exists and says the extraction is incomplete (unless allowed).
    """
    state = extraction_state(path)
    if state is not None and not state["complete"] and not allow_incomplete:
        raise ValueError(
            f"{path} is incomplete ({state['rows_done']} of {state['identity']['n_rows']} rows); "
            f"resume extract_features or pass allow_incomplete=True"
        )
    return np.load(path, mmap_mode="r")
