"""The one error of the worker's HIT layer.

Services and selectors of a worker's HIT raise :class:`HitRefused`; the worker's pages turn it
into a page that explains, and the worker's JSON API (``apis_hit``) into
``{"error": <message>}`` with its status, in one exception handler.
"""

from __future__ import annotations


class HitRefused(Exception):
    """A worker request the study cannot accept.

    ``status`` is the HTTP status to answer with: 400 bad input, 403 not this worker's,
    404 nothing to show, 409 not now or out of order, 413 too large. ``str()`` is a sentence
    for the worker that names the field or the step at fault.
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
