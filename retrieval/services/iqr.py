"""Interactive Query Refinement over a feature set, with the session state kept by the caller.

The session itself (``retrieval.iqr.IqrSession``, no Django) works on rows; this service maps
archive image ids to rows and back, and keeps the state JSON so that a worker's IQR survives a
server restart (the study app stores it with the search task). The session's SVM (scikit-learn,
numba) is imported on the first round, not with this module, so that the web process loads it
only once a worker refines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..models import FeatureSet, Image
from ..selectors.features import (
    feature_set_arrays,
    feature_set_codes,
    feature_set_resident,
    feature_set_rows,
)


def iqr_device() -> str | None:
    """Where this process runs IQR: "cuda" when it has a GPU (the archive then kept resident on
    it, ``feature_set_resident``), else None (numpy and numba over the memory-mapped file)."""
    import torch

    return "cuda" if torch.cuda.is_available() else None


@dataclass(frozen=True)
class IqrResult:
    """``ranking``: image ids, best first, judged images excluded; ``state``: JSON-serialisable;
    ``working_set_size``: the rows the SVM ranked (SMQTK's working set, or the whole archive)."""

    ranking: list[int]
    state: dict
    working_set_size: int = 0


def iqr_start(*, feature_set: FeatureSet, query_image: Image, **session_options) -> dict:
    """A new session's state for ``query_image`` (which counts as a positive)."""
    features, _ = feature_set_arrays(feature_set=feature_set)
    query_row = int(feature_set_rows(feature_set=feature_set, image_ids=[query_image.pk])[0])
    from ..iqr import IqrSession  # heavy: see the module docstring

    session = IqrSession(features, query_row, **session_options)
    return {"feature_set": feature_set.pk, "session": session.to_state()}


def iqr_refine(
    *,
    feature_set: FeatureSet,
    state: dict,
    positives: Iterable[int] = (),
    negatives: Iterable[int] = (),
    unmark: Iterable[int] = (),
    limit: int | None = None,
    working_set: str | None = None,
    device: str | None = None,
) -> IqrResult:
    """Record feedback (image ids) and re-rank with the HIK SVM.

    ``limit`` keeps the first ``limit`` images of the ranking; over the whole archive
    (``working_set="all"``) with the feature set's HIK codes built, only the rows that their
    bounds cannot rule out are scored (the same images). ``working_set`` overrides the state's
    ("neighbours", SMQTK's, or "all") for this refine and those after it.

    ``device``: None or "numpy" computes on the host (numpy and numba over the memory-mapped
    file); a torch device ("cuda") computes there over the features kept resident on it by this
    process (``feature_set_resident``: loaded once, no copy per refine).

    Raises ``ValueError`` for images outside the feature set, a state made for another feature
    set, or an image marked both relevant and not relevant; the state passed in is never changed.
    """
    if state.get("feature_set") != feature_set.pk:
        raise ValueError(
            f"IQR state belongs to feature set {state.get('feature_set')}, not {feature_set.pk}"
        )
    features, ids = feature_set_arrays(feature_set=feature_set)
    rows = {
        name: feature_set_rows(feature_set=feature_set, image_ids=values).tolist()
        for name, values in (("positives", positives), ("negatives", negatives), ("unmark", unmark))
    }
    from ..iqr import IqrSession  # heavy: see the module docstring

    session_state = dict(state["session"])
    if working_set is not None:
        session_state["working_set"] = working_set
    if device is None or device == "numpy":
        codes = feature_set_codes(feature_set=feature_set)
        session = IqrSession.from_state(session_state, features, codes=codes, device=device)
    else:
        # Resident on the device: a full scan there beats the host-side bucket bounds.
        resident = feature_set_resident(feature_set=feature_set, device=device)
        session = IqrSession.from_state(session_state, resident, device=device)
    session.adjudicate(**rows)
    ranking = session.refine(limit=limit)
    return IqrResult(
        ranking=[int(ids[row]) for row in ranking],
        state={"feature_set": feature_set.pk, "session": session.to_state()},
        working_set_size=int(session.working_rows().size),
    )
