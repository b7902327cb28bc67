"""Candidate pools: the images a worker can be shown for a query in any IQR round.

The pool of a query is the study's ``candidate_pool_size`` nearest archive images to it under
the study's distance (the query itself left out). Rankings shown to workers are restricted to
it, so its saliency maps can be precomputed before the study goes live (issue: a with-XAI
worker must never wait for a map). It is a pure function of the study's feature set, distance
and pool size, so it is recomputed rather than stored.
"""

from __future__ import annotations

from retrieval.selectors.features import search

from ..models import QueryImage, Study


def candidate_pool(*, study: Study, query: QueryImage) -> list[int]:
    """Image ids of ``query``'s pool, nearest first (length ``study.candidate_pool_size`` or the
    archive size minus one, whichever is smaller)."""
    hits = search(
        feature_set=study.feature_set,
        query_image=query.image,
        k=study.candidate_pool_size,
        metric=study.distance,
    )
    return [image_id for image_id, _ in hits]
