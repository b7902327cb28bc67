"""Archive features kept resident on a compute device, loaded once per process.

A refine scans the whole archive (seed 001: ~123K images x 2,048 ResNet50 dimensions, 1 GB of
float32). Handing the search a host array with ``device="cuda"`` copies the matrix to the GPU on
every call: on one H200, ``top_k`` over 123,000 x 2,048 took 331 ms that way, almost all of it
the copy, while the same HIK top 50 over features already on the GPU took 1.2 ms. A gpu worker
therefore wraps its archive in :class:`ResidentFeatures` once and passes the wrapper wherever an
array is expected (:func:`retrieval.search.top_k`, :class:`retrieval.iqr.IqrSession`,
:meth:`retrieval.hik_svm.HikSvmReranker.decision_function`):

* the torch backends of the search and of the SVM read their chunks from the resident tensor when
  they compute on the same device (no host-to-device copy);
* every other read (one row, a few judged rows, another backend) goes to the host array, which
  stays a read-only memory map, so nothing else changes.

:func:`resident_features` keeps the wrappers of this process, at most ``keep`` of them (a worker
serves one archive at a time; two cover a switch), keyed by the caller's key (path and
modification time of the feature file), so a re-extracted file is loaded afresh.

No Django here (STYLE habit 9).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np

__all__ = ["ResidentFeatures", "resident_features", "resident_forget"]

# Rows copied to the device per step while loading: bounds the host temporary (64 MB at 2,048
# float32 dimensions) whatever the archive's size.
_LOAD_ROWS = 8192


class ResidentFeatures:
    """An archive's features on a torch device, with the host array beside them.

    Parameters
    ----------
    features : ndarray or np.memmap of shape (n_images, n_dims), float32 or float64
        The archive's features; read once, in chunks of 8,192 rows, and kept as ``host``.
    device : str or torch.device
        Where the copy lives ("cuda", "cuda:1", "cpu").

    Attributes
    ----------
    host : the ``features`` passed in (row reads go here)
    tensor : torch.Tensor of shape (n_images, n_dims) on ``device``, same dtype
    shape, dtype : as ``host``'s
    nbytes : int, bytes of ``tensor`` on the device
    """

    def __init__(self, features, device) -> None:
        import torch

        if not hasattr(features, "shape") or len(features.shape) != 2:
            raise ValueError(f"features must be 2-D (n_images, n_dims), got {np.shape(features)}")
        if features.dtype not in (np.float32, np.float64):
            raise ValueError(f"features must be float32 or float64, got {features.dtype}")
        self.host = features
        self.device = torch.device(device)
        self.shape = tuple(features.shape)
        self.dtype = features.dtype
        dtype = torch.float64 if features.dtype == np.float64 else torch.float32
        self.tensor = torch.empty(self.shape, dtype=dtype, device=self.device)
        for start in range(0, self.shape[0], _LOAD_ROWS):
            stop = min(start + _LOAD_ROWS, self.shape[0])
            # np.array: a memmap slice is read-only, torch wants a writable buffer.
            self.tensor[start:stop].copy_(torch.from_numpy(np.array(features[start:stop])))
        self.nbytes = self.tensor.element_size() * self.tensor.nelement()

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        return self.host[key]

    def __repr__(self) -> str:
        return f"ResidentFeatures(shape={self.shape}, dtype={self.dtype}, device={self.device})"

    def on(self, device) -> bool:
        """Whether the resident copy is on ``device`` (a torch.device or its name)."""
        import torch

        wanted = torch.device(device)
        if wanted.type != self.device.type:
            return False
        # "cuda" names the current device; compare indices only when both give one.
        return (
            wanted.index is None or self.device.index is None or wanted.index == self.device.index
        )

    def device_rows(self, start: int, stop: int, rows: np.ndarray | None = None):
        """Rows ``start:stop`` of the archive (or of the ``rows`` subset) as a device tensor.

        A view of the resident tensor for a contiguous range; a gathered copy on the device for
        a subset. Never a host-to-device copy of features (only of ``rows``' indices).
        """
        import torch

        if rows is None:
            return self.tensor[start:stop]
        index = torch.from_numpy(np.ascontiguousarray(rows[start:stop])).to(self.device)
        return self.tensor.index_select(0, index)


_STORE: OrderedDict[tuple, ResidentFeatures] = OrderedDict()
_STORE_LOCK = threading.Lock()


def resident_features(
    key: Hashable, load: Callable[[], np.ndarray], *, device, keep: int = 2
) -> ResidentFeatures:
    """This process's resident copy of the features named ``key`` on ``device``.

    Parameters
    ----------
    key : hashable
        Names the features and their version (e.g. ``(path, mtime)``).
    load : callable
        Returns the host array; called only when the copy is not resident yet.
    device : str or torch.device
    keep : int, default 2
        Most copies kept; the least recently used one is dropped (its device memory freed once
        no caller holds it).

    Returns
    -------
    ResidentFeatures
        The same object for the same ``(key, device)`` until it is dropped.
    """
    import torch

    store_key = (key, str(torch.device(device)))
    with _STORE_LOCK:
        found = _STORE.get(store_key)
        if found is not None:
            _STORE.move_to_end(store_key)
            return found
        # Loading under the lock: two threads asking at once load the archive once.
        resident = ResidentFeatures(load(), device)
        _STORE[store_key] = resident
        while len(_STORE) > max(1, keep):
            _STORE.popitem(last=False)
        return resident


def resident_forget() -> None:
    """Drop every resident copy of this process (tests; a worker switching archives)."""
    with _STORE_LOCK:
        _STORE.clear()
