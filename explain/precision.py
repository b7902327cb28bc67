"""The arithmetic precision of a saliency method's forward passes, a recorded choice.

Every method takes ``precision`` in its config (so it is stored beside every map, STYLE habit 12)
and runs its network under :func:`compute_precision`, which sets torch's switches explicitly for
the computation and restores them afterwards; nothing is left to a library default (cuDNN, for
one, runs float32 convolutions in TF32 on Ampere and newer GPUs unless told not to).

Measured on one H200 (ResNet50 at 224 px, SBSM block 20, stride 4, one query/result pair),
against the CPU's float32 maps:

========  ===========  ==================  =======================================
value     one pair     Pearson vs CPU      largest error, share of the map's max
========  ===========  ==================  =======================================
"fp32"    1.01 s       0.99999999          (true float32, the default)
"tf32"    0.385 s      0.9996              3.7 %
"bf16"    0.443 s      0.948               up to 34 %
========  ===========  ==================  =======================================

"fp32" is the default because a study's maps are its evidence: a worker in the with-XAI
condition should see SBSM as defined (seed 000, Eq. 1-4), not an approximation of it. "tf32"
is offered for studies that accept a 3.7 % error for a 2.6x faster map; "bf16" is kept for
measurement only (its maps differ visibly). On a CPU, "fp32" and "tf32" compute the same
(TF32 is a CUDA tensor-core format) and "bf16" runs under CPU autocast.

The switches are process-wide: a gpu worker runs one task at a time per process (prefetch 1,
concurrency 1), so no other computation of the process sees them changed.

No Django here (STYLE habit 9).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["PRECISIONS", "check_precision", "compute_precision"]

#: The accepted values of a method's ``precision``.
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`; ValueError naming the valid ones."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {list(PRECISIONS)}")
    return precision


@contextlib.contextmanager
def compute_precision(precision: str, device: torch.device | str) -> Iterator[None]:
    """Run the block's forward passes on ``device`` in ``precision``; restore torch after.

    Parameters
    ----------
    precision : {"fp32", "tf32", "bf16"}
        "fp32": TF32 off for cuBLAS and cuDNN, float32 matmul precision "highest"; "tf32": TF32
        on for both, matmul precision "high"; "bf16": TF32 off and ``torch.autocast`` to
        bfloat16 on ``device``'s type.
    device : torch.device or str
        Where the forward passes run (decides the autocast device type).
    """
    check_precision(precision)
    device_type = torch.device(device).type
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    tf32 = precision == "tf32"
    try:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
        if precision == "bf16":
            with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved[0]
        torch.backends.cudnn.allow_tf32 = saved[1]
        torch.set_float32_matmul_precision(saved[2])
