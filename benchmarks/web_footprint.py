"""Benchmark: the web tier's footprint, a gunicorn worker's memory and ``manage.py check``'s time.

Prints, in one run:

(a) the resident memory (VmRSS) of one gunicorn worker with the production settings, read
    from ``/proc`` after it served, over real HTTP: a lab participant's whole HIT (the page,
    its state, the tutorial, both search tasks with every result judged and every refine taken, their
    questionnaires, the final one and the submit; the result images) and then the admin (log in,
    the index, the study list and change page, saliency maps, feature sets, MTurk HITs,
    assignments and events). Beside the footprint before this change (853 MB: torch and
    torchvision were loaded by the admin's imports) and the target, 200 MB. Three figures: after
    start-up, after the HIT and after the admin. During the HIT a refine loads scikit-learn and
    scipy for the IQR SVM (the worker's real work), and the with-XAI task's overlay look-up
    completes the condition's method config through the method classes, which loads torch.
(b) the wall time of ``manage.py check`` (median of 3 runs), beside 8.3 s before and the 1.5 s
    target, and whether torch was imported (``-X importtime``).

The data (a synthetic archive, its features and the demo study, live, without saliency maps:
the HIT asks for overlays and finds none) is made once in ``--data-dir`` and reused by later
runs. The machine's load average is printed: on a shared machine the times grow.
Exit status 1 when a target is missed.

Usage::

    python benchmarks/web_footprint.py                          # data in data/bench-web
    python benchmarks/web_footprint.py --data-dir /tmp/web --images 200
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE_RSS_MB = 853.0
TARGET_RSS_MB = 200.0
BEFORE_CHECK_S = 8.3
TARGET_CHECK_S = 1.5
HEAVY = ("torch", "torchvision", "numba", "sklearn", "matplotlib")
STUDY = "demo"  # fixtures/studies/demo.yaml
ADMIN_USER, ADMIN_PASSWORD = "bench", secrets.token_urlsafe(16)
# The demo's archive, features and study (manage.py demo's first steps, without its saliency
# precompute: the HIT then finds no overlay, after asking for them as always).
SETUP = """
from pathlib import Path
from django.conf import settings
from retrieval.services import archive_import_coco
from retrieval.services.features import feature_set_create, feature_set_extract
from retrieval.synthetic import generate_archive
from studyplatform.management.commands.demo import DEMO_ARCHIVE, DEMO_BACKBONE, DEMO_SPEC
from studyplatform.studies.models import Study
from studyplatform.studies.services.specs import study_spec_load
from studyplatform.studies.services.studies import study_create_from_spec, study_status_set
folder = Path(settings.DATA_DIR) / "archive"
generate_archive(folder, n_images={images}, seed=0)
archive = archive_import_coco(archive_name=DEMO_ARCHIVE, instances_path=folder / "instances.json",
                              image_dir=folder / "images", log=lambda message: None).archive
feature_set, _ = feature_set_create(archive=archive, backbone_config=DEMO_BACKBONE, enqueue=False)
feature_set_extract(feature_set=feature_set)
study = study_create_from_spec(spec=study_spec_load(DEMO_SPEC))
study_status_set(study=study, status=Study.Status.READY)
study_status_set(study=study, status=Study.Status.LIVE)
"""


def _manage(args: list[str], env: dict, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, **kwargs
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


class Browser:
    """Cookies kept by hand (the production cookies are Secure, sent here over plain HTTP
    behind a pretended TLS proxy: ``X-Forwarded-Proto: https``), CSRF as the page's script."""

    def __init__(self, base: str) -> None:
        self.base, self.cookies, self.requests = base, {}, 0
        self.origin = "https://" + base.split("://", 1)[1]

    def request(self, method: str, path: str, *, form=None, body=None) -> tuple[int, bytes]:
        headers = {
            "X-Forwarded-Proto": "https",
            "Origin": self.origin,
            "Referer": self.origin + "/",
        }
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if method == "POST":
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        request = urllib.request.Request(
            self.base + path, data=data, headers=headers, method=method
        )
        opener = urllib.request.build_opener(_NoRedirect)
        self.requests += 1
        try:
            response = opener.open(request, timeout=120)
        except urllib.error.HTTPError as error:
            response = error
        for value in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(value).items():
                self.cookies[name] = morsel.value
        return response.status, response.read()

    def ok(self, method: str, path: str, *, expect=(200,), **kwargs) -> bytes:
        status, content = self.request(method, path, **kwargs)
        if status not in expect:
            raise SystemExit(f"{method} {path} answered {status}: {content[:400]!r}")
        return content


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def hit_through_http(browser: Browser) -> dict:
    """A lab participant's whole HIT; returns counts of what was done."""
    lab = f"/lab/{STUDY}/"
    browser.ok("GET", lab)
    browser.ok("POST", lab, form={"code": f"bench{secrets.token_hex(4)}"}, expect=(302,))
    browser.ok("GET", lab)
    state = json.loads(browser.ok("GET", f"/hit/{STUDY}/api/state"))["state"]
    assignment, done = state["assignment"], {"refines": 0, "judged": 0, "images": 0}

    def post(name: str, body: dict) -> dict:
        reply = browser.ok(
            "POST", f"/hit/{STUDY}/api/{name}", body={"assignment": assignment, **body}
        )
        return json.loads(reply)["state"]

    for step in range(400):
        stage = state["stage"]
        if stage == "done":
            return done
        if stage == "tutorial":
            state = post("tutorial", {})
        elif stage == "task_intro":
            state = post("begin", {"task": state["task"]["id"]})
        elif stage == "task":
            task = state["task"]
            for card in task["results"]:
                browser.ok("GET", f"/hit/{STUDY}/image/{card['id']}")
                done["images"] += 1
                state = post("event", {"id": f"b{step}-{card['id']}", "type": "marked_not_relevant",
                                       "task": task["id"], "image": card["id"],
                                       "round": task["round"]})  # fmt: skip
                done["judged"] += 1
                if state["stage"] != "task":
                    break
            if state["stage"] != "task":
                continue
            if (state.get("task") or task)["can_refine"]:
                state = post("refine", {"task": task["id"], "id": f"b{step}-refine"})
                done["refines"] += 1
            else:
                state = post("finish", {"task": task["id"]})
        elif stage in ("questionnaire", "final"):
            answers = {
                q["code"]: ("fine" if q["points"] is None else q["points"])
                for q in state["questions"]
            }
            task_id = state["task"]["id"] if state["task"] else None
            state = post("answers", {"task": task_id, "answers": answers, "id": f"b{step}-answers"})
        elif stage == "submit":
            state = post("submit", {})
        else:
            raise SystemExit(f"the HIT page is in stage {stage!r}")
    raise SystemExit("the HIT did not end")


def admin_through_http(browser: Browser, study_id: int) -> int:
    """Log in and open the admin's pages; returns how many pages were opened."""
    browser.ok("GET", "/admin/login/")
    browser.ok(
        "POST",
        "/admin/login/?next=/admin/",
        form={"username": ADMIN_USER, "password": ADMIN_PASSWORD, "next": "/admin/"},
        expect=(302,),
    )
    pages = [
        "/admin/",
        "/admin/studies/study/",
        f"/admin/studies/study/{study_id}/change/",
        "/admin/studies/assignment/",
        "/admin/studies/event/",
        f"/admin/explain/saliencymap/?study={study_id}",
        "/admin/retrieval/featureset/",
        "/admin/mturk/hit/",
    ]
    for page in pages:
        browser.ok("GET", page)
    return len(pages)


def check_times(env: dict, runs: int = 3) -> tuple[float, list[str]]:
    times, heavy = [], set()
    for _ in range(runs):
        started = time.perf_counter()
        run = _manage(["check"], env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "manage.py", "check"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    for line in run.stderr.splitlines():
        name = line.rsplit("|", 1)[-1].strip()
        if line.startswith("import time:") and name in HEAVY:
            heavy.add(name)
    return statistics.median(times), sorted(heavy)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "bench-web")
    parser.add_argument("--images", type=int, default=120, help="Synthetic images.")
    args = parser.parse_args()
    data = args.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    dev = {**os.environ, "DJANGO_SETTINGS_MODULE": "studyplatform.settings.dev",
           "STUDYPLATFORM_DATA_DIR": str(data)}  # fmt: skip
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    if not (data / ".setup-done").is_file():
        print("setting up the data (once): archive, features, the demo study live ...", flush=True)
        _manage(["migrate", "-v", "0"], dev)
        _manage(["shell", "-c", SETUP.format(images=args.images)], dev, stdout=subprocess.DEVNULL)
        (data / ".setup-done").touch()
    made = _manage(["shell", "-c", (
        "from django.contrib.auth import get_user_model; U = get_user_model(); "
        f"u, _ = U.objects.get_or_create(username={ADMIN_USER!r}, defaults={{'is_staff': True, "
        "'is_superuser': True}); "
        f"u.set_password({ADMIN_PASSWORD!r}); u.save(); "
        "from studyplatform.studies.models import Study; "
        f"print(Study.objects.get(slug={STUDY!r}).pk)")], dev, capture_output=True, text=True)  # fmt: skip
    study_id = int(made.stdout.split()[-1])
    port = _free_port()
    production = {
        **dev,
        "DJANGO_SETTINGS_MODULE": "studyplatform.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "STATIC_ROOT": str(data / "static"),
    }
    _manage(["collectstatic", "--noinput", "-v", "0"], production)
    log = open(data / "gunicorn.log", "w")  # noqa: SIM115  (closed with the server below)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "studyplatform.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--timeout", "300"],
        cwd=ROOT, env=production, stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        browser = Browser(f"http://127.0.0.1:{port}")
        for _ in range(600):
            try:
                if browser.request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("gunicorn did not answer /healthz")
        (worker,) = _children(server.pid)
        rss = {"start": _rss_mb(worker)}
        hit = hit_through_http(browser)
        rss["hit"] = _rss_mb(worker)
        pages = admin_through_http(browser, study_id)
        rss["admin"] = _rss_mb(worker)
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    check_s, heavy = check_times(dev)

    print(f"\n(a) one gunicorn worker, production settings, {browser.requests} HTTP requests")
    print(f"    HIT: {hit['judged']} judgements, {hit['refines']} refines, {hit['images']} images;"
          f" admin: {pages} pages")  # fmt: skip
    for label, value in rss.items():
        print(f"    RSS after {label:<6} {value:7.0f} MB   before {BEFORE_RSS_MB:.0f} MB "
              f"(ours/before {value / BEFORE_RSS_MB:.2f})   target {TARGET_RSS_MB:.0f} MB "
              f"(ours/target {value / TARGET_RSS_MB:.2f})")  # fmt: skip
    print("(b) manage.py check, median of 3")
    print(f"    {check_s:.2f} s   before {BEFORE_CHECK_S} s (ours/before {check_s / BEFORE_CHECK_S:.2f})"
          f"   target {TARGET_CHECK_S} s (ours/target {check_s / TARGET_CHECK_S:.2f})")  # fmt: skip
    print(f"    heavy packages imported: {heavy or 'none'}")
    missed = rss["admin"] > TARGET_RSS_MB or check_s > TARGET_CHECK_S or heavy
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
