"""The rehearsal's crowd: simulated MTurk workers over HTTP, in a process of their own.

``python -m analysis.simulation.driver --plan plan.json --out drive.json``

The plan (written by ``manage.py rehearse``) names the platform's base URL, the study, the
local MTurk endpoint and its HIT ids, the ground truth (query image -> class -> images holding
it), how many workers arrive and when (a burst: ``burst`` workers spread over
``burst_seconds``, then one every ``steady_gap`` seconds), the think-time scale and a deadline.
Each worker, in its own thread: registers on the endpoint (US, 5,000 approved HITs, 99 %),
accepts the first HIT it may, does the HIT through the platform's pages
(:class:`~analysis.simulation.worker.Worker` over
:class:`~analysis.simulation.transport.HttpTransport`, loading each round's images and
overlays as the browser does) from a loopback address of its own (``127.1.0.1`` on; the
plan's ``own_addresses: false`` sends them all from ``127.0.0.1``), and POSTs the final form to ``{turkSubmitTo}/mturk/
externalSubmit``. No Django is imported: the driver knows the platform only through HTTP.

``drive.json``: one record per worker (worker id, MTurk assignment id, whether the platform
and MTurk saw it submitted, the event ids the platform acknowledged, any error) and the traffic
(answers by endpoint and status, latencies, 5xx times, retries).
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from . import SimulationReport, WorkerModel
from .errors import SimulationError
from .transport import HttpTransport, Traffic, loopback_address
from .worker import SleepingClock, Worker


def _control(mturk_url: str, name: str, data: dict, *, attempts: int = 5) -> tuple[int, dict]:
    """POST ``/_control/<name>`` on the local endpoint; (status, JSON), retrying connection
    errors (bounded)."""
    body = json.dumps(data).encode()
    for attempt in range(attempts):
        request = urllib.request.Request(f"{mturk_url}/_control/{name}", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5 * (attempt + 1))
    return 0, {}


def _external_submit(submit_to: str, assignment_id: str, *, attempts: int = 5) -> bool:
    body = urllib.parse.urlencode({"assignmentId": assignment_id}).encode()
    for attempt in range(attempts):
        try:
            url = f"{submit_to.rstrip('/')}/mturk/externalSubmit"
            with urllib.request.urlopen(url, data=body, timeout=30) as response:
                return response.status == 200
        except urllib.error.HTTPError as exc:
            return exc.code == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5 * (attempt + 1))
    return False


class Crowd:
    """The workers of one plan, their records and the shared traffic counters."""

    def __init__(self, plan: dict) -> None:
        self.plan = plan
        self.traffic = Traffic()
        self.records: list[dict] = []
        self._lock = threading.Lock()
        positives = {int(k): set(v) for k, v in plan["positives"].items()}
        query_class = {int(k): int(v) for k, v in plan["query_class"].items()}
        self.truth = lambda task: positives.get(query_class.get(task["query"], -1), set())
        self.model = WorkerModel(**plan.get("model", {}))
        self.deadline = time.monotonic() + float(plan["max_seconds"])

    def arrival(self, index: int) -> float:
        """Seconds after the start at which worker ``index`` arrives."""
        burst, span = int(self.plan["burst"]), float(self.plan["burst_seconds"])
        if index < burst:
            return span * index / max(burst, 1)
        return span + (index - burst + 1) * float(self.plan["steady_gap"])

    def work(self, index: int) -> None:
        plan = self.plan
        seed = int(plan["seed"])
        worker_id = f"A{seed:03d}REHEARSE{index:05d}"
        record: dict = {"index": index, "worker_id": worker_id, "acknowledged": [],
                        "submitted_here": False, "submitted_to_mturk": False}  # fmt: skip
        try:
            status, _ = _control(plan["mturk_url"], "workers", {
                "worker_id": worker_id, "country": "US", "approved_count": 5000,
                "approval_rate": 99})  # fmt: skip
            if status != 200:
                raise SimulationError(f"the endpoint refused worker {worker_id}: {status}")
            hits = list(plan["hit_ids"])
            random.Random(seed * 100_003 + index).shuffle(hits)
            assignment = hit = None
            for hit in hits:
                status, answer = _control(
                    plan["mturk_url"], "accept", {"worker_id": worker_id, "hit_id": hit}
                )
                if status == 200:
                    assignment = answer["AssignmentId"]
                    break
            if assignment is None:
                record["refused_on_mturk"] = True
                return
            params = {"assignmentId": assignment, "hitId": hit, "workerId": worker_id,
                      "turkSubmitTo": plan["mturk_url"]}  # fmt: skip
            record["mturk_assignment_id"] = assignment
            transport = HttpTransport(
                base_url=plan["base_url"], study=plan["study"],
                behind_proxy=bool(plan.get("behind_proxy", True)),
                retry_seconds=float(plan.get("retry_seconds", 60)), traffic=self.traffic,
                source_ip=loopback_address(index) if plan.get("own_addresses", True) else None,
            )  # fmt: skip
            report = SimulationReport(mode="mturk")
            worker = Worker(transport=transport, index=index, seed=seed, model=self.model,
                            clock=SleepingClock(float(plan["think_scale"])), truth=self.truth,
                            report=report, mode="mturk", mturk_params=params)  # fmt: skip
            try:
                if worker.open():
                    worker.run()
            finally:
                record["acknowledged"] = worker.acknowledged
                record["platform_assignment"] = worker.assignment
                record["refused"] = report.refused
            if report.submitted:
                record["submitted_here"] = True
                record["submitted_to_mturk"] = _external_submit(plan["mturk_url"], assignment)
        except (SimulationError, KeyError, ValueError) as exc:
            record["error"] = str(exc)[:500]
        finally:
            with self._lock:
                self.records.append(record)

    def run(self) -> dict:
        started = time.monotonic()
        threads = []
        for index in range(int(self.plan["workers"])):
            wait = started + self.arrival(index) - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, max(0.0, self.deadline - time.monotonic())))
            if time.monotonic() >= self.deadline:
                break
            thread = threading.Thread(target=self.work, args=(index,), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join(timeout=max(0.0, self.deadline - time.monotonic()))
        unfinished = sum(thread.is_alive() for thread in threads)
        with self._lock:
            records = sorted(self.records, key=lambda r: r["index"])
        return {
            "started_at": time.time() - (time.monotonic() - started),
            "seconds": time.monotonic() - started,
            "workers_started": len(threads),
            "unfinished": unfinished,
            "records": records,
            "traffic": self.traffic.as_dict(),
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    with open(args.plan) as handle:
        plan = json.load(handle)
    result = Crowd(plan).run()
    with open(args.out, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main()
