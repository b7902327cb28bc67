"""``manage.py rehearse`` (``make rehearsal``): seed 001's study on the production stack, a
burst of simulated MTurk workers over HTTP, faults on a schedule, and the invariants checked.

Steps: the stack comes up (``studyplatform.rehearsal.stack``: PostgreSQL database made afresh,
a private Redis, moto's S3 server, the local MTurk endpoint, gunicorn with the production
settings, Celery ``default``/``gpu`` workers and beat); the synthetic archive, its features and
seed 001's study; the saliency precompute on the ``gpu`` worker (killed with SIGKILL 10 s in,
then started again); the HITs published to the endpoint; the crowd
(``python -m analysis.simulation.driver``, a process of its own speaking HTTP only) while the
drive's faults are injected; then sync, approve, bonus and the analysis under MTurk faults; and
the report. Exit status 1 when an invariant fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from studyplatform.rehearsal.faults import DRIVE_SCHEDULE, FaultLog, Injector, schedule_run
from studyplatform.rehearsal.report import report_text, traffic_summary
from studyplatform.rehearsal.stack import ROOT, Ports, Stack, StackError

INITIAL_BALANCE = "100000.00"


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Rehearse a launch: seed 001 on the production stack (gunicorn, PostgreSQL, Redis, "
        "Celery, S3 on moto, the local MTurk endpoint), a burst of simulated workers over HTTP, "
        "injected faults, and the invariants checked."
    )

    def add_arguments(self, parser):
        parser.add_argument("--images", type=int, default=2000, help="Synthetic images (2000).")
        parser.add_argument("--workers", type=int, default=0,
                            help="Simulated workers (default: every published assignment).")  # fmt: skip
        parser.add_argument("--burst", type=int, default=300, help="Workers in the burst (300).")
        parser.add_argument("--burst-seconds", type=float, default=60.0)
        parser.add_argument("--steady-gap", type=float, default=0.5,
                            help="Seconds between arrivals after the burst (0.5).")  # fmt: skip
        parser.add_argument("--think-scale", type=float, default=0.02,
                            help="Think times are multiplied by this (0.02: 5 s -> 0.1 s).")  # fmt: skip
        parser.add_argument("--faults", choices=["all", "none"], default="all")
        parser.add_argument("--port", type=int, default=18000,
                            help="Web port; the next three: Redis, S3, MTurk (18000).")  # fmt: skip
        parser.add_argument("--web-workers", type=int, default=4)
        parser.add_argument("--database-url", default=os.environ.get(
            "REHEARSAL_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/sp_rehearsal"))  # fmt: skip
        parser.add_argument("--out", type=Path, default=Path(settings.DATA_DIR) / "rehearsal")
        parser.add_argument("--max-minutes", type=float, default=30.0,
                            help="Longest the crowd may run (30).")  # fmt: skip
        parser.add_argument("--saliency-block", type=int, default=64,
                            help="SBSM block in pixels at 128 px (64; seed 001: 20 at 224 px).")  # fmt: skip
        parser.add_argument("--saliency-stride", type=int, default=32,
                            help="SBSM stride in pixels (32; seed 001: 4).")  # fmt: skip
        parser.add_argument("--precompute-minutes", type=float, default=15.0,
                            help="Longest wait for the precompute; the crowd starts then (15).")  # fmt: skip
        parser.add_argument("--seed", type=int, default=0)

    def say(self, text: str) -> None:
        self.stdout.write(f"[{time.strftime('%H:%M:%S')}] {text}")
        self.stdout.flush()

    def handle(self, *args, **o):
        for name in ("burst", "images"):
            if o[name] < 0:
                raise CommandError(f"--{name.replace('_', '-')} must be >= 0")
        if o["think_scale"] < 0 or o["max_minutes"] <= 0:
            raise CommandError("--think-scale must be >= 0 and --max-minutes > 0")
        folder = o["out"].resolve()
        stack = Stack(folder=folder, database_url=o["database_url"], ports=Ports(o["port"]),
                      web_workers=o["web_workers"], log=self.say)  # fmt: skip
        faults = FaultLog()
        injector = Injector(stack, faults)
        phases: dict[str, float] = {}
        # A TERM (timeout, CI) stops the stack as Ctrl-C does.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            report = self._rehearse(stack, injector, faults, phases, o)
        except StackError as exc:
            raise CommandError(f"{exc}\n(logs in {folder / 'logs'})") from exc
        finally:
            self.say("stopping the stack")
            stack.down()
        (folder / "report.json").write_text(json.dumps(report, indent=1, default=str))
        self.stdout.write(report_text(report))
        if not all(check["ok"] for check in report["checks"].values()):
            sys.exit(1)

    def _stage(self, stack: Stack, stage: str, *extra: str, timeout: float) -> dict:
        out = stack.folder / f"{stage}.json"
        stack.manage("rehearse_stage", stage, "--out", str(out), *extra, timeout=timeout)
        return json.loads(out.read_text())

    def _rehearse(self, stack, injector, faults, phases, o) -> dict:
        with_faults = o["faults"] == "all"
        t0 = time.monotonic()
        self.say(f"starting the stack in {stack.folder}")
        stack.up()
        phases["stack up"] = time.monotonic() - t0

        t0 = time.monotonic()
        self.say(f"archive of {o['images']} images, features, seed 001's study")
        saliency = {"block": o["saliency_block"], "stride": o["saliency_stride"]}
        setup = self._stage(stack, "setup", "--images", str(o["images"]), "--seed", str(o["seed"]),
                            "--folder", str(stack.folder / "archives"),
                            "--saliency", json.dumps(saliency), timeout=3600)  # fmt: skip
        phases["setup"] = time.monotonic() - t0

        t0 = time.monotonic()
        self.say("saliency precompute on the gpu worker")
        precompute = threading.Thread(target=lambda: stack.manage(
            "precompute_saliency", "--study", setup["study"], "--timeout",
            str(o["precompute_minutes"] * 60), "-v", "0",
            timeout=o["precompute_minutes"] * 60 + 120))  # fmt: skip
        precompute.start()
        precompute_started = time.monotonic()
        if with_faults:
            time.sleep(10)
            injector.run("gpu_worker_killed")
            faults.entries[-1]["phase"] = "precompute"
            faults.entries[-1]["offset"] = time.monotonic() - precompute_started
        precompute.join()
        phases["precompute"] = time.monotonic() - t0

        self._control(stack, "balance", {"amount": INITIAL_BALANCE})
        published = self._stage(stack, "publish", "--study", setup["study"],
                                "--mturk-url", stack.mturk_url, timeout=600)  # fmt: skip
        workers = o["workers"] or published["assignments_published"]
        plan = {
            "base_url": stack.base_url, "study": setup["study"], "mturk_url": stack.mturk_url,
            "hit_ids": published["hit_ids"], "query_class": published["query_class"],
            "positives": published["positives"], "workers": workers,
            "burst": min(o["burst"], workers), "burst_seconds": o["burst_seconds"],
            "steady_gap": o["steady_gap"], "think_scale": o["think_scale"], "seed": o["seed"],
            "max_seconds": o["max_minutes"] * 60, "retry_seconds": 60,
        }  # fmt: skip
        (stack.folder / "plan.json").write_text(json.dumps(plan))

        self.say(f"the crowd: {workers} workers, {plan['burst']} in the first "
                 f"{o['burst_seconds']:.0f} s")  # fmt: skip
        restarted = self._drive(stack, injector, faults, phases, with_faults, o)
        drive = json.loads((stack.folder / "drive.json").read_text())
        drive["initial_balance"] = INITIAL_BALANCE
        (stack.folder / "drive.json").write_text(json.dumps(drive))

        t0 = time.monotonic()
        if with_faults:
            injector.run("mturk_finish_faults")
            faults.entries[-1]["phase"] = "finish"
            faults.entries[-1]["offset"] = 0.0
        self.say("outbox, sync, approve, bonus, analysis, checks")
        finish = self._stage(stack, "finish", "--study", setup["study"],
                             "--mturk-url", stack.mturk_url,
                             "--mturk-state", str(stack.mturk_state),
                             "--drive", str(stack.folder / "drive.json"), timeout=1800)  # fmt: skip
        phases["finish"] = time.monotonic() - t0

        records = drive["records"]
        traffic = traffic_summary(drive, faults.database_windows())
        checks = dict(finish["checks"])
        checks["no 5xx outside the database's fault windows"] = {
            "ok": traffic["responses_5xx_outside_database_faults"] == 0,
            "detail": f"{traffic['responses_5xx']} 5xx in all, "
            f"{traffic['responses_5xx_outside_database_faults']} outside",
        }
        errors = [r for r in records if r.get("error")]
        checks["no request given up after its retries"] = {
            "ok": drive["traffic"]["gave_up"] == 0,
            "detail": f"{drive['traffic']['gave_up']} requests failed for their whole retry budget "
            f"({plan['retry_seconds']} s); their workers could not go on",
        }
        checks["every worker finished without an error"] = {
            "ok": not errors and drive["unfinished"] == 0,
            "detail": f"{len(errors)} errors, {drive['unfinished']} unfinished"
            + (f"; first: {errors[0]['error'][:200]}" if errors else ""),
        }
        started = drive["started_at"]
        for entry in faults.entries:
            entry.setdefault("phase", "drive")
            entry.setdefault("offset", entry["at"] - started)
        return {
            "folder": str(stack.folder),
            "setup": {
                **setup,
                "images": o["images"],
                "workers": workers,
                "hits": len(published["hit_ids"]),
                "assignments_published": published["assignments_published"],
                "think_scale": o["think_scale"],
                "web_workers": o["web_workers"],
            },
            "phases": phases,
            "faults": sorted(
                faults.entries, key=lambda e: (e["phase"] != "precompute", e["offset"])
            ),
            "crowd": {
                "workers_started": drive["workers_started"],
                "refused": sum(1 for r in records if r.get("refused_on_mturk") or r.get("refused")),
                "errors": len(errors),
                "unfinished": drive["unfinished"],
            },
            "traffic": traffic,
            "finish": {k: v for k, v in finish.items() if k != "checks"},
            "checks": checks,
            "restarted": restarted,
        }

    def _drive(self, stack, injector, faults, phases, with_faults, o) -> list[str]:
        t0 = time.monotonic()
        argv = [sys.executable, "-m", "analysis.simulation.driver",
                "--plan", str(stack.folder / "plan.json"), "--out", str(stack.folder / "drive.json")]  # fmt: skip
        with open(stack.folder / "logs" / "driver.log", "ab") as log:
            driver = subprocess.Popen(
                argv, cwd=ROOT, env=stack.env, stdout=log, stderr=subprocess.STDOUT
            )
        stop = threading.Event()
        thread = None
        if with_faults:
            thread = threading.Thread(
                target=schedule_run, args=(injector, DRIVE_SCHEDULE, time.monotonic(), stop)
            )
            thread.start()
        restarted: list[str] = []
        deadline = time.monotonic() + o["max_minutes"] * 60 + 120
        try:
            while driver.poll() is None:
                if time.monotonic() > deadline:
                    driver.kill()
                    raise StackError("the crowd ran past --max-minutes")
                restarted += stack.supervise()
                time.sleep(1.0)
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=60)
        phases["crowd"] = time.monotonic() - t0
        if driver.returncode != 0:
            raise StackError(f"the crowd's driver exited with {driver.returncode}")
        return restarted

    @staticmethod
    def _control(stack: Stack, name: str, data: dict) -> None:
        request = urllib.request.Request(f"{stack.mturk_url}/_control/{name}",
                                         data=json.dumps(data).encode(), method="POST")  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
