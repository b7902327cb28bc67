"""Benchmark: how long a worker waits for a refine round, with 1, 4 and 16 workers at once.

Round latency is the time from the refine click to results with their maps: the request
(``search_round_request``: the marks stored, the round created) and the round's computation
(``search_round_compute``: IQR over the archive, the missing saliency maps computed and
rendered, the round made ready), the same code a gpu worker runs. N workers refine at the same
moment (one thread each, released together); p50 and p95 are over all their rounds. Three
modes on the same marks:

archive
    seed 001's round: IQR over the whole archive (SMQTK's working set), the maps of new results
    computed on demand;
pool
    the pool-bound mode: IQR over the working set, only the query's candidate pool shown, every
    map precomputed (so the round computes none);
bare IQR
    ``retrieval.services.iqr.iqr_refine`` alone (no round, no maps): the floor of both.

Archives:

demo
    the demo study as ``manage.py demo`` builds it (``--images`` synthetic images, SynthNet
    features at 128 px, SBSM with 32 px blocks every 16 px) on a temporary SQLite database, no
    broker (the embedded default: the round is computed in the requesting thread). Marks are
    the oracle's on round 0 (relevant when the image holds the class).
synthetic 123K
    123,000 x 2,048 float32 L1-normalised features (a memory-mapped file, 1 GB, clustered like
    the test archive) without images: the IQR part of a round only (archive vs pool vs bare);
    its maps are the demo's per-map cost times the maps a round needs, printed separately.

On a machine with CUDA, ``--device cuda`` runs the IQR on the GPU over features kept resident
(``retrieval.resident``) and the maps there; without one it prints the expected GPU figures
derived from the H200 measurements quoted in the README (an estimate, not a measurement).

Usage::

    python benchmarks/refine_latency.py               # demo (300 images) and 123K synthetic
    python benchmarks/refine_latency.py --quick       # 120 demo images, 30,000 synthetic rows
    python benchmarks/refine_latency.py --device cuda # on a GPU machine
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

WORKERS = (1, 4, 16)
# Seed 001: 2 refines of 20 results; the H200 figures of the README (one SBSM pair, ResNet50 at
# 224 px, block 20, stride 4) and the resident top-k.
H200_PAIR_S = {"fp32": 1.01, "tf32": 0.385}
H200_TOPK_RESIDENT_S = 0.0012
H200_TOPK_COPIED_S = 0.331


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def at_once(n: int, work) -> list[float]:
    """Run ``work(i)`` in ``n`` threads released together; each returns its own seconds."""
    barrier = threading.Barrier(n)
    out: list[float] = [0.0] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work(i)
        except BaseException as error:  # reported after the join
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return out


# ------------------------------------------------------------------------------------------
# Demo archive, through the services
# ------------------------------------------------------------------------------------------


def demo_rows(n_workers: int, study, scope: str, tag: str):
    """``n_workers`` begun with-XAI tasks of ``study`` with oracle marks on round 0."""
    from retrieval.models import Annotation
    from studyplatform.studies.models import (
        Assignment,
        Participant,
        SearchTask,
    )
    from studyplatform.studies.services.events import event_record
    from studyplatform.studies.services.hit import search_task_begin

    study.search_scope = scope
    study.save(update_fields=["search_scope"])
    pairs = list(study.task_pairs.select_related("query_a", "query_b", "condition_a"))
    tasks = []
    for i in range(n_workers):
        pair = pairs[i % len(pairs)]
        xai_first = pair.condition_a.is_xai
        participant = Participant.objects.create(source="lab", external_id=f"{tag}-{i}")
        assignment = Assignment.objects.create(
            study=study, participant=participant, task_pair=pair, order="ab" if xai_first else "ba"
        )
        query = pair.query_a if xai_first else pair.query_b
        condition = pair.condition_a if xai_first else pair.condition_b
        task = SearchTask.objects.create(
            assignment=assignment, position=1, query=query, condition=condition
        )
        task = search_task_begin(task=task)
        shown = task.rounds.get(number=0).ranking
        holding = set(
            Annotation.objects.filter(image_id__in=shown, category=query.category).values_list(
                "image_id", flat=True
            )
        )
        # At most target - 1 relevant, so the task goes on to its refine.
        relevant = [i for i in shown if i in holding][: study.target_count - 1]
        for image_id in shown:
            event_record(
                assignment=assignment,
                client_event_id=f"m{image_id}",
                type="marked_relevant" if image_id in relevant else "marked_not_relevant",
                task=task,
                image_id=image_id,
            )
        tasks.append(task)
    return tasks


def demo_round(task, event_id: str) -> float:
    from django.db import connection

    from studyplatform.studies.services.rounds import search_round_compute, search_round_request

    started = time.perf_counter()
    try:
        round_ = search_round_request(task=task, client_event_id=event_id)
        search_round_compute(round_id=round_.pk)
    finally:
        connection.close()
    return time.perf_counter() - started


def demo_bare(task) -> float:
    from django.db import connection

    from retrieval.services.iqr import iqr_refine
    from studyplatform.studies.selectors.events import task_marks

    marks = task_marks(task=task)
    started = time.perf_counter()
    try:
        iqr_refine(
            feature_set=task.assignment.study.feature_set,
            state=task.iqr_state,
            positives=[i for i, m in marks.items() if m == "relevant"],
            negatives=[i for i, m in marks.items() if m == "not_relevant"],
            limit=task.assignment.study.results_per_round,
        )
    finally:
        connection.close()
    return time.perf_counter() - started


def run_demo(images: int, seed: int) -> tuple[dict, float]:
    """{(mode, n): (p50, p95)} on the demo study, and the mean seconds of one on-demand map."""
    from saliency_study import demo_study

    from explain.services import saliency_precompute_study
    from studyplatform.studies.models import IQRRound

    study = demo_study(images=images, seed=seed)
    saliency_precompute_study(study=study, sync=True)  # the warm start: every pool map
    # One round of each mode first, untimed: the backbone is built and numba compiles once per
    # process, as in a gpu worker that has served its first round.
    for scope in ("pool", "archive"):
        (task,) = demo_rows(1, study, scope, tag=f"warm-{scope}")
        demo_round(task, "refine-1")
    rows: dict = {}
    per_map: list[float] = []
    for n in WORKERS:
        for mode in ("bare IQR", "pool", "archive"):
            scope = "pool" if mode == "pool" else "archive"
            tasks = demo_rows(n, study, scope, tag=f"{mode}-{n}")
            if mode == "bare IQR":
                seconds = at_once(n, lambda i, tasks=tasks: demo_bare(tasks[i]))
            else:
                seconds = at_once(n, lambda i, tasks=tasks: demo_round(tasks[i], "refine-1"))
                for task in tasks:
                    round_ = IQRRound.objects.get(task=task, number=1)
                    assert round_.status == "ready", round_.status
                    if mode == "archive" and round_.maps_on_demand:
                        per_map.append(round_.seconds / round_.maps_on_demand)
            rows[mode, n] = percentiles(seconds)
            print(f"  demo {mode:9s} x{n:<2d}: p50 {rows[mode, n][0]:.3f} s", flush=True)
    return rows, float(np.median(per_map)) if per_map else float("nan")


# ------------------------------------------------------------------------------------------
# 123,000-row synthetic features, numeric code only
# ------------------------------------------------------------------------------------------


def synthetic_features(path: Path, n_rows: int, n_dims: int = 2048, seed: int = 0) -> np.ndarray:
    """Clustered L1-normalised histograms (50 classes), written in chunks to a memmap."""
    rng = np.random.default_rng(seed)
    centres = rng.dirichlet(np.full(n_dims, 0.3), size=50).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, n_dims))
    for start in range(0, n_rows, 8192):
        stop = min(start + 8192, n_rows)
        labels = rng.integers(0, 50, stop - start)
        noise = rng.random((stop - start, n_dims), dtype=np.float32) ** 4
        block = 0.5 * centres[labels] + 0.5 * noise / noise.sum(axis=1, keepdims=True)
        out[start:stop] = block / block.sum(axis=1, keepdims=True)
    out.flush()
    return np.load(path, mmap_mode="r")


def run_synthetic(n_rows: int, device: str | None, results: int = 20, pool: int = 200) -> dict:
    from retrieval.iqr import IqrSession
    from retrieval.resident import ResidentFeatures
    from retrieval.search import top_k

    with tempfile.TemporaryDirectory(prefix="refine-bench-") as folder:
        features = synthetic_features(Path(folder) / "features.npy", n_rows)
        data = features if device in (None, "numpy") else ResidentFeatures(features, device)
        rows: dict = {}
        rng = np.random.default_rng(1)
        for n in WORKERS:
            queries = rng.choice(n_rows, size=n, replace=False)
            sessions = []
            for query in queries:
                session = IqrSession(data, int(query), device=device)
                shown = session.initial_ranking(results)
                session.adjudicate(positives=shown[:3], negatives=shown[3:])
                pool_rows = top_k(data, features[int(query)], pool, device=device)[0]
                sessions.append((session, pool_rows))

            def archive(i: int, sessions=sessions) -> float:
                started = time.perf_counter()
                session, _ = sessions[i]
                clone = IqrSession.from_state(session.to_state(), data, device=device)
                clone.refine(limit=results)
                return time.perf_counter() - started

            def pool_mode(i: int, sessions=sessions) -> float:
                started = time.perf_counter()
                session, pool_rows = sessions[i]
                clone = IqrSession.from_state(session.to_state(), data, device=device)
                ranked = clone.refine()
                kept = ranked[np.isin(ranked, pool_rows)][:results]
                assert kept.size
                return time.perf_counter() - started

            for mode, work in (("archive IQR", archive), ("pool IQR", pool_mode)):
                rows[mode, n] = percentiles(at_once(n, work))
                print(f"  123K {mode:11s} x{n:<2d}: p50 {rows[mode, n][0]:.3f} s", flush=True)
    return rows


def table(title: str, rows: dict, modes: tuple[str, ...]) -> None:
    print(f"\n{title}")
    print(f"{'workers at once':>16s}  " + "  ".join(f"{m + ' p50/p95 (s)':>28s}" for m in modes))
    for n in WORKERS:
        cells = [f"{rows[m, n][0]:12.3f} / {rows[m, n][1]:<12.3f}" for m in modes]
        print(f"{n:>16d}  " + "  ".join(f"{c:>28s}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=300, help="demo images (demo: 300)")
    parser.add_argument("--rows", type=int, default=123_000, help="synthetic feature rows")
    parser.add_argument("--device", default=None, help='"cuda" on a GPU machine')
    parser.add_argument("--quick", action="store_true", help="120 images, 30,000 rows")
    args = parser.parse_args()
    if args.quick:
        args.images, args.rows = 120, 30_000

    import torch
    from saliency_study import django_setup

    data_dir = Path(tempfile.mkdtemp(prefix="refine-latency-"))
    django_setup(data_dir)
    cuda = torch.cuda.is_available()
    device = args.device
    print(
        f"refine latency: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
        f"device {device or 'cpu (numpy/numba)'}, CUDA {'yes' if cuda else 'no'}",
        flush=True,
    )
    demo, per_map = run_demo(args.images, seed=0)
    synthetic = run_synthetic(args.rows, device)
    table(
        f"demo archive ({args.images} images, SynthNet 128 px, SBSM 32/16), round latency",
        demo,
        ("archive", "pool", "bare IQR"),
    )
    print(f"  one on-demand map (demo config) median {per_map:.3f} s")
    table(
        f"synthetic {args.rows:,} x 2,048 features, IQR part of a round (20 results, pool 200)",
        synthetic,
        ("archive IQR", "pool IQR"),
    )
    worst = max(synthetic["archive IQR", n][1] for n in WORKERS)
    print(
        f"  archive round with maps = IQR + maps on demand x {per_map:.3f} s each "
        f"(demo config); with all 20 maps missing: {worst + 20 * per_map:.2f} s at p95"
    )
    ratio = demo["archive", 1][0] / demo["bare IQR", 1][0]
    print(f"  archive round / bare IQR (demo, 1 worker, p50): {ratio:.1f}x")
    if not cuda or device != "cuda":
        for precision, pair in H200_PAIR_S.items():
            print(
                f"ESTIMATE (no GPU here, not a measurement): one H200, ResNet50 224 px SBSM "
                f"{precision}: {pair:.3f} s per missing map, IQR top-k over resident features "
                f"{H200_TOPK_RESIDENT_S * 1e3:.1f} ms (copied each call: "
                f"{H200_TOPK_COPIED_S * 1e3:.0f} ms); a round with k missing maps of 20 "
                f"~ {H200_TOPK_RESIDENT_S * 4:.3f} s + k x {pair:.3f} s "
                f"(k = 20: {20 * pair:.1f} s on one GPU; the warm start and one result's masked "
                f"embeddings serving every query bring k down)"
            )


if __name__ == "__main__":
    main()
