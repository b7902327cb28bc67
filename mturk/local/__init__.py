"""A local MTurk-compatible endpoint: the whole requester API (JSON 1.1, every operation of
botocore's ``mturk`` service model, validated against it), simulated workers, fault injection and
the worker-side pages. Plain standard library,
no Django: ``python -m mturk.local --port 8765 --state mturk.sqlite3`` or
``manage.py mturk_local_server``.
"""

from mturk.local.server import LocalMTurkServer, serve
from mturk.local.store import Store

__all__ = ["LocalMTurkServer", "Store", "serve"]
