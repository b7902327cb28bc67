"""Load on the production stack: web and PostgreSQL CPU-seconds per HIT, requests/s at
saturation, p50/p95/p99 per endpoint and a web worker's memory, beside a constant-JSON Django
view on the same stack (the limit) and beside the figures measured before this stack existed.

Usage: ``.venv/bin/python benchmarks/load.py [--workers 60] [--images 500] [--web-workers 4]``

Brings the rehearsal's stack up (``studyplatform.rehearsal.stack``: gunicorn with the
production settings, PostgreSQL, Redis, Celery, S3 on moto, the local MTurk endpoint), builds
seed 001's study on a synthetic archive, publishes it, then

1. the limit: ``--limit-clients`` threads GET ``/bench/constant`` for ``--limit-seconds``;
2. the crowd: ``--workers`` simulated workers arriving at once with no think time (saturation),
   each doing a whole HIT over HTTP (``analysis.simulation.driver``).

CPU is read from ``/proc/<pid>/stat`` of the gunicorn workers and of the database's backends
(``pg_stat_activity``) before and after each phase. Prints ours, the limit, the earlier
figures, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyplatform.settings.dev")

# Measured before this stack: 4 sync gunicorn workers, dev settings, PostgreSQL, Redis cache,
# no broker, 20-100 lab participants with 0.2-1 s think times, 2 cores.
BEFORE = {
    "web_cpu_s_per_hit": 2.0,
    "db_cpu_s_per_hit": 0.5,
    "hits_per_minute": 38.0,
    "requests_per_s": 57.5,
    "event_post_p95_ms": 2000.0,
    "web_worker_rss_mb": 980.0,
}
TARGETS = {"web_cpu_s_per_hit": 0.5, "web_worker_rss_mb": 250.0, "event_post_p95_ms": 300.0}
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """utime + stime of each live pid, seconds."""
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, private) of ``pid`` in MB, from smaps_rollup."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        values[key] = int(value.split()[0]) / 1024
    return values["Rss"], values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)


class CpuMeter:
    """CPU used by the web workers and the database's backends between ``start`` and ``stop``."""

    def __init__(self, stack, database: str) -> None:
        self.stack, self.database = stack, database

    def _pids(self) -> tuple[list[int], list[int]]:
        import psycopg

        from studyplatform.rehearsal.stack import database_url_for

        admin = database_url_for(self.stack.database_url, "postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
            ).fetchall()
        return self.stack.children("web"), [r[0] for r in rows]

    def start(self) -> None:
        web, db = self._pids()
        self.web0, self.db0 = cpu_seconds(web), cpu_seconds(db)

    def stop(self) -> tuple[float, float]:
        web, db = self._pids()
        web1, db1 = cpu_seconds(web), cpu_seconds(db)
        # A backend that appeared during the phase counts from zero.
        return (
            sum(v - self.web0.get(p, 0.0) for p, v in web1.items()),
            sum(v - self.db0.get(p, 0.0) for p, v in db1.items()),
        )


def limit_run(base_url: str, clients: int, seconds: float) -> dict:
    import requests

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client() -> None:
        session = requests.Session()
        session.headers["X-Forwarded-Proto"] = "https"
        mine = []
        while time.monotonic() < stop:
            started = time.monotonic()
            response = session.get(f"{base_url}/bench/constant", timeout=30)
            mine.append(time.monotonic() - started)
            if response.status_code != 200:
                errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": errors[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=60)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--web-workers", type=int, default=4)
    parser.add_argument("--limit-clients", type=int, default=16)
    parser.add_argument("--limit-seconds", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=18040)
    parser.add_argument("--out", type=Path, default=Path("/tmp/studyplatform-load"))
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/sp_rehearsal_load"
    )
    args = parser.parse_args()

    import django

    django.setup()
    from studyplatform.rehearsal.report import traffic_summary
    from studyplatform.rehearsal.stack import Ports, Stack

    stack = Stack(folder=args.out.resolve(), database_url=args.database_url,
                  ports=Ports(args.port), web_workers=args.web_workers)  # fmt: skip
    stack.env["DJANGO_SETTINGS_MODULE"] = "studyplatform.rehearsal.limit"
    database = args.database_url.rsplit("/", 1)[-1]
    try:
        print(f"stack up in {stack.folder} ...", flush=True)
        stack.up()
        out = stack.folder
        stack.manage("rehearse_stage", "setup", "--out", str(out / "setup.json"), "--images",
                     str(args.images), "--folder", str(out / "archives"), timeout=3600)  # fmt: skip
        study = json.loads((out / "setup.json").read_text())["study"]
        stack.manage("rehearse_stage", "publish", "--out", str(out / "publish.json"), "--study",
                     study, "--mturk-url", stack.mturk_url, timeout=600)  # fmt: skip
        published = json.loads((out / "publish.json").read_text())
        meter = CpuMeter(stack, database)

        print("limit: constant JSON ...", flush=True)
        meter.start()
        limit = limit_run(stack.base_url, args.limit_clients, args.limit_seconds)
        limit["web_cpu_ms_per_request"] = 1000 * meter.stop()[0] / max(limit["requests"], 1)

        plan = {
            "base_url": stack.base_url, "study": study, "mturk_url": stack.mturk_url,
            "hit_ids": published["hit_ids"], "query_class": published["query_class"],
            "positives": published["positives"], "workers": args.workers,
            "burst": args.workers, "burst_seconds": 1.0, "steady_gap": 0.0, "think_scale": 0.0,
            "seed": 1, "max_seconds": 1800, "retry_seconds": 60,
        }  # fmt: skip
        (out / "plan.json").write_text(json.dumps(plan))
        print(f"crowd: {args.workers} workers at once, no think time ...", flush=True)
        meter.start()
        subprocess.run(
            [sys.executable, "-m", "analysis.simulation.driver", "--plan", str(out / "plan.json"),
             "--out", str(out / "drive.json")], cwd=ROOT, env=stack.env, check=True, timeout=2400,
        )  # fmt: skip
        web_cpu, db_cpu = meter.stop()
        drive = json.loads((out / "drive.json").read_text())
        traffic = traffic_summary(drive, [])
        memory = [memory_mb(pid) for pid in stack.children("web")]
    finally:
        stack.down()

    hits = max(traffic["hits_submitted"], 1)
    requests_per_hit = traffic["requests"] / hits
    event = traffic["endpoints"].get("POST event", {})
    ours = {
        "web_cpu_s_per_hit": web_cpu / hits,
        "db_cpu_s_per_hit": db_cpu / hits,
        "hits_per_minute": traffic["hits_per_minute"],
        "requests_per_s": traffic["requests_per_s"],
        "event_post_p95_ms": event.get("p95_ms", float("nan")),
        "web_worker_rss_mb": max(rss for rss, _ in memory),
    }
    limit_per_hit = limit["web_cpu_ms_per_request"] * requests_per_hit / 1000
    print()
    print(f"load.py: {args.workers} workers at once, {traffic['hits_submitted']} HITs, "
          f"{traffic['requests']} requests ({requests_per_hit:.0f} per HIT), "
          f"{args.web_workers} gunicorn workers, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"limit (constant JSON, {args.limit_clients} clients): {limit['requests_per_s']:.0f} "
          f"req/s, p50/p95/p99 {limit['p50_ms']:.1f}/{limit['p95_ms']:.1f}/{limit['p99_ms']:.1f} "
          f"ms, {limit['web_cpu_ms_per_request']:.2f} ms web CPU per request")  # fmt: skip
    print()
    header = f"{'measure':<22} {'ours':>9} {'limit':>9} {'before':>9} {'target':>8} {'ours/limit':>11} {'ours/before':>12}"
    print(header)
    limits = {"web_cpu_s_per_hit": limit_per_hit, "requests_per_s": limit["requests_per_s"],
              "event_post_p95_ms": limit["p95_ms"]}  # fmt: skip
    for key, value in ours.items():
        lim, before, target = limits.get(key), BEFORE[key], TARGETS.get(key)
        print(f"{key:<22} {value:>9.3f} {lim if lim is not None else float('nan'):>9.3f} "
              f"{before:>9.1f} {target if target else float('nan'):>8.1f} "
              f"{(value / lim) if lim else float('nan'):>11.2f} {value / before:>12.2f}")  # fmt: skip
    print()
    print(
        f"{'endpoint':<22} {'n':>7} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}   (limit p95 {limit['p95_ms']:.1f} ms)"
    )
    for key, e in traffic["endpoints"].items():
        print(f"{key:<22} {e['n']:>7} {e['p50_ms']:>9.1f} {e['p95_ms']:>9.1f} {e['p99_ms']:>9.1f}")
    print()
    for pid_mem in memory:
        print(f"web worker: RSS {pid_mem[0]:.0f} MB, private {pid_mem[1]:.0f} MB")
    print(f"5xx: {traffic['responses_5xx']}, connection failures: {traffic['connection_failures']}")
    (args.out / "load.json").write_text(json.dumps(
        {"ours": ours, "limit": limit, "before": BEFORE, "targets": TARGETS,
         "endpoints": traffic["endpoints"]}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
