"""``python -m mturk.local --port 8765 --state mturk-local.sqlite3`` (no Django needed)."""

from __future__ import annotations

import argparse

from mturk.local.server import serve


def main() -> None:
    parser = argparse.ArgumentParser(description="Local MTurk-compatible endpoint")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--state", default="mturk-local.sqlite3")
    args = parser.parse_args()
    serve(state=args.state, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
