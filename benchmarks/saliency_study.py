"""Benchmark: a whole study's saliency precompute, with and without masked-embedding reuse.

Builds the demo study the way ``manage.py demo`` does (a synthetic archive of ``--images``
images, its SynthNet features at 128 px, ``fixtures/studies/demo.yaml`` created, made ready and
live) on a temporary SQLite database and data folder, then computes every map of its plan in
this process, twice:

ours
    the platform's way, :func:`explain.services.saliency_precompute_study` with ``sync=True``:
    one chunk per result image, the result's SBSM masked embeddings (seed 000, Eq. 2) computed
    once and every query needing that result derived from them (one call of
    ``Sbsm.maps_from_embeddings``). Timed from its first progress report (plan made, backbone
    built) to the last map committed; the overlays it renders afterwards are timed apart.
peer
    every (query, result) pair on its own: after the maps of "ours" are deleted,
    :func:`explain.services.saliency_precompute_chunk` once per pair with that one query, the
    masked-embedding cache emptied before each pair (outside the timing) and bounded to 0
    bytes, so each pair pays its own masked pass. The services and the stored maps are the
    same; only the reuse is gone. ``--peer-pairs N`` times an evenly spaced sample of N pairs
    instead of all of them (pairs per second is a rate, so the sample estimates it).

Both computations are checked: the masked passes are counted (ours: one per result image;
peer: one per pair) and the peer's maps are compared with ours (the same float16 masked stack
feeds both, so they should agree to float16 rounding).

Prints pairs per second of each, their ratio, and the limit: with Q pairs per result image on
average, reuse can at best be Q times faster than the peer (if the masked pass were the whole
cost); the limit asks for half of that, i.e. the per-map work (query embedding, derivation,
storing the ``.npy`` and the row) may cost at most as much, summed over a chunk, as its one
masked pass. Exit status 1 when it is missed. Wall times on a shared machine grow with its load,
which is printed with the process CPU time of each computation.

Usage::

    python benchmarks/saliency_study.py             # the demo's 300 images, every pair both ways
    python benchmarks/saliency_study.py --quick     # 120 images, the peer on 60 pairs
    python benchmarks/saliency_study.py --images 200 --peer-pairs 100
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Half of the best case (Q times the peer's pairs per second): see the module docstring.
LIMIT_SHARE_OF_IDEAL = 0.5
QUICK_IMAGES = 120
QUICK_PEER_PAIRS = 60


def django_setup(data_dir: Path) -> None:
    """Django on a fresh SQLite database in ``data_dir``, no broker, no cloud storage."""
    for name in list(os.environ):
        if name.startswith(("DATABASE_URL", "CELERY_", "REDIS_URL", "AWS_", "SALIENCY_CACHE")):
            del os.environ[name]
    os.environ.pop("MEDIA_ROOT", None)
    os.environ["STUDYPLATFORM_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "studyplatform.settings.dev"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def demo_study(*, images: int, seed: int):
    """The demo study on ``images`` synthetic images, as ``manage.py demo`` builds it."""
    from django.core.management import call_command

    from studyplatform.management.commands.demo import DEMO_SPEC
    from studyplatform.management.commands.demo import Command as Demo
    from studyplatform.studies.services.specs import study_spec_load
    from studyplatform.studies.services.studies import study_create_from_spec, study_status_set

    call_command("migrate", interactive=False, verbosity=0)
    Demo(stdout=io.StringIO(), stderr=io.StringIO())._features(images, seed)
    study = study_create_from_spec(spec=study_spec_load(DEMO_SPEC))
    study_status_set(study=study, status="ready")
    return study_status_set(study=study, status="live")


class MaskedPasses:
    """Counts SBSM's masked passes (one forward pass over every mask of one result image)."""

    def __init__(self) -> None:
        from explain.methods.sbsm import Sbsm

        self.count = 0
        original = Sbsm.masked_embeddings

        def counting(method, embed, result):
            self.count += 1
            return original(method, embed, result)

        Sbsm.masked_embeddings = counting


def stored_maps(feature_set_id: int, pairs: list[tuple[int, int]]) -> dict:
    """``{(query id, result id): map}`` of the stored raw maps of ``pairs``, float32."""
    from django.core.files.storage import default_storage

    from explain.models import SaliencyMap
    from explain.render import npy_bytes_to_map

    wanted = set(pairs)
    maps = {}
    for row in SaliencyMap.objects.filter(feature_set_id=feature_set_id):
        if (row.query_id, row.result_id) in wanted:
            with default_storage.open(row.raw_key, "rb") as handle:
                maps[row.query_id, row.result_id] = npy_bytes_to_map(handle.read()).astype(
                    np.float32
                )
    return maps


def evenly_spaced(items: list, n: int | None) -> list:
    if n is None or n >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=300, help="synthetic images (demo: 300)")
    parser.add_argument("--seed", type=int, default=0, help="of the synthetic archive")
    parser.add_argument(
        "--peer-pairs", type=int, default=None, help="time the peer on this many pairs (all)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"--images {QUICK_IMAGES} --peer-pairs {QUICK_PEER_PAIRS} unless given",
    )
    args = parser.parse_args()
    if args.quick:
        args.images = QUICK_IMAGES if args.images == parser.get_default("images") else args.images
        args.peer_pairs = QUICK_PEER_PAIRS if args.peer_pairs is None else args.peer_pairs
    if args.peer_pairs is not None and args.peer_pairs < 1:
        parser.error(f"--peer-pairs must be >= 1, got {args.peer_pairs}")
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="bench-saliency-study-") as tmp:
        django_setup(Path(tmp) / "data")
        import torch
        from django.conf import settings

        from explain.cache import MaskedEmbeddingCache
        from explain.models import SaliencyMap
        from explain.selectors import saliency_plan
        from explain.services import saliency_precompute_chunk, saliency_precompute_study
        from retrieval.models import Image

        started = time.perf_counter()
        study = demo_study(images=args.images, seed=args.seed)
        plan = saliency_plan(study=study)
        (group,) = plan.groups
        pairs = sorted(group.pairs)
        n_results = len({result for _, result in pairs})
        n_queries = len({query for query, _ in pairs})
        setup_s = time.perf_counter() - started
        print(
            f"demo study on {args.images} synthetic images built in {setup_s:.0f} s; "
            f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
        )
        passes = MaskedPasses()

        # Ours: the platform's whole-study precompute, in process.
        marks: dict[str, float] = {}

        def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            marks.setdefault("first", now)
            if done == total:
                marks["last"] = now

        cpu_started = time.process_time()
        whole_started = time.perf_counter()
        report = saliency_precompute_study(study=study, sync=True, progress=progress)
        whole_s = time.perf_counter() - whole_started
        ours_cpu_s = time.process_time() - cpu_started
        ours_s = marks["last"] - marks["first"]
        overlays_s = whole_s - (marks["last"] - whole_started)
        ours_passes = passes.count
        if not report.computed == report.total == len(pairs):
            raise SystemExit(f"the precompute did not compute the whole plan: {report}")

        # Peer: one pair at a time, the masked pass redone for each.
        peer_pairs = evenly_spaced(pairs, args.peer_pairs)
        ours_maps = stored_maps(plan.feature_set_id, peer_pairs)
        SaliencyMap.objects.filter(feature_set_id=plan.feature_set_id).delete()
        settings.SALIENCY_CACHE_BYTES = 0
        cache = MaskedEmbeddingCache(Path(settings.SALIENCY_CACHE_DIR), max_bytes=0)
        feature_set = study.feature_set
        images = Image.objects.select_related("directory").in_bulk(
            {image for pair in peer_pairs for image in pair}
        )
        passes.count = 0
        peer_s = 0.0
        cpu_started = time.process_time()
        for query_id, result_id in peer_pairs:
            cache.clear()
            pair_started = time.perf_counter()
            saliency_precompute_chunk(
                feature_set=feature_set,
                result=images[result_id],
                queries=[images[query_id]],
                method_config=group.method_config,
            )
            peer_s += time.perf_counter() - pair_started
        peer_cpu_s = time.process_time() - cpu_started
        peer_passes = passes.count
        peer_maps = stored_maps(plan.feature_set_id, peer_pairs)

    differences = [float(np.max(np.abs(ours_maps[p] - peer_maps[p]))) for p in peer_pairs]
    scale = max(float(np.max(m)) for m in ours_maps.values())
    ours_rate = len(pairs) / ours_s
    peer_rate = len(peer_pairs) / peer_s
    per_result = len(pairs) / n_results
    limit_rate = LIMIT_SHARE_OF_IDEAL * per_result * peer_rate
    sbsm = {k: v for k, v in group.method_config.items() if k in ("block", "stride", "distance")}

    print(f"\nsaliency precompute of the demo study, {args.images} images, SynthNet 128 px")
    print(f"{'':34}{'ours':>10}{'peer':>10}{'limit':>10}{'ours/peer':>11}{'ours/limit':>12}")
    print(
        f"{'pairs per second':34}{ours_rate:10.2f}{peer_rate:10.2f}{limit_rate:10.2f}"
        f"{ours_rate / peer_rate:11.2f}{ours_rate / limit_rate:12.2f}"
    )
    ours_per_pair = ours_passes / len(pairs)
    peer_per_pair = peer_passes / len(peer_pairs)
    print(
        f"{'masked passes per pair':34}{ours_per_pair:10.2f}{peer_per_pair:10.2f}{'':10}"
        f"{ours_per_pair / peer_per_pair:11.2f}"
    )
    print(f"{'seconds (maps only)':34}{ours_s:10.1f}{peer_s:10.1f}")
    print(f"{'masked passes':34}{ours_passes:10d}{peer_passes:10d}")
    print(f"{'process CPU seconds':34}{ours_cpu_s:10.1f}{peer_cpu_s:10.1f}")
    print(
        f"plan: {len(pairs)} (query, result) pairs, {n_results} result images, {n_queries} "
        f"queries; {per_result:.2f} pairs per result image (the best-case ratio); SBSM {sbsm}"
    )
    print(
        f"ours: saliency_precompute_study(sync=True), {report.chunks} result-image chunks; "
        f"then {report.overlays} overlays rendered in {overlays_s:.1f} s (not counted)"
    )
    print(
        f"peer: saliency_precompute_chunk per pair, cache emptied before each, on "
        f"{len(peer_pairs)} of {len(pairs)} pairs"
        + (" (evenly spaced sample)" if len(peer_pairs) < len(pairs) else "")
    )
    print(
        f"maps agree: max |ours - peer| = {max(differences):.2e} over {len(differences)} pairs "
        f"(largest map value {scale:.3g})"
    )
    print(
        f"limit: {LIMIT_SHARE_OF_IDEAL:.0%} of the best case, i.e. "
        f"{LIMIT_SHARE_OF_IDEAL * per_result:.2f} x the peer's pairs per second"
    )
    print(f"load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    ok = ours_rate >= limit_rate and ours_passes == n_results and peer_passes == len(peer_pairs)
    print("within limits" if ok else "OVER A LIMIT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
