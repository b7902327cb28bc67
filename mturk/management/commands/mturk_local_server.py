"""``manage.py mturk_local_server --port 8765 --state mturk-local.sqlite3``: the local
MTurk-compatible endpoint (see :mod:`mturk.local`), threaded, state in its own SQLite file."""

from __future__ import annotations

import contextlib

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Serve the local MTurk-compatible endpoint (requester API and worker pages)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--state",
            default=str(getattr(settings, "DATA_DIR", ".")) + "/mturk-local.sqlite3",
            help="SQLite file holding the endpoint's state",
        )
        parser.add_argument(
            "--worker",
            action="append",
            default=[],
            help="add a simulated worker: ID[:COUNTRY[:APPROVED[:RATE]]], e.g. AW1:US:5000:99",
        )
        parser.add_argument("--quiet", action="store_true")

    def handle(self, *args, **options) -> None:
        from mturk.local import LocalMTurkServer, Store

        store = Store(options["state"])
        for spec in options["worker"]:
            parts = spec.split(":")
            store.worker_add(
                worker_id=parts[0],
                country=parts[1] if len(parts) > 1 else "US",
                approved_count=int(parts[2]) if len(parts) > 2 else 5000,
                approval_rate=int(parts[3]) if len(parts) > 3 else 99,
            )
        server = LocalMTurkServer(
            state=options["state"],
            host=options["host"],
            port=options["port"],
            verbose=not options["quiet"],
        )
        self.stdout.write(
            f"Local MTurk endpoint on {server.url} (state {options['state']}); "
            f"worker pages at {server.url}/worker/"
        )
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
