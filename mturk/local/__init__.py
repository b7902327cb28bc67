"""A local MTurk-compatible endpoint: the requester API (JSON 1.1, the operations the platform
calls), simulated workers, fault injection and the worker-side pages. Plain standard library,
no Django: ``python -m mturk.local --port 8765 --state mturk.sqlite3`` or
``manage.py mturk_local_server``.
"""

from mturk.local.server import LocalMTurkServer, serve
from mturk.local.store import Store

__all__ = ["LocalMTurkServer", "Store", "serve"]
