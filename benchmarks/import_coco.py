"""Benchmark: import of a COCO-sized instances file, time and peak memory.

Generates a COCO-format file shaped like ``instances_train2017.json`` (by default 120,000 images,
850,000 annotations with polygon segmentations, 80 categories, categories *after* annotations as in
the real file; no image files), imports it with ``manage.py import_coco`` in a fresh process on an
empty database, and prints, in one run, our wall time and peak resident memory beside the peer's
and beside the platform's limits for it (3 minutes, 2 GB), as ratios.

The peer is ``json.load`` of the same file, the first step of ``pycocotools.coco.COCO`` (which
reads the whole file into memory before indexing it); it parses only and writes nothing.

Usage::

    python benchmarks/import_coco.py                 # SQLite in a temporary folder
    python benchmarks/import_coco.py --postgres      # a scratch PostgreSQL database on 127.0.0.1
    python benchmarks/import_coco.py --images 5000 --annotations 35000   # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TIME_LIMIT_S = 180.0
MEMORY_LIMIT_MB = 2048.0


def write_coco(path: Path, *, n_images: int, n_annotations: int, seed: int = 0) -> None:
    """Write a COCO-shaped instances file; polygons of 8-40 vertices, like COCO's."""
    rng = np.random.default_rng(seed)
    image_of = np.sort(rng.integers(1, n_images + 1, size=n_annotations))
    categories = [
        {"supercategory": f"super{i // 10}", "id": i + 1, "name": f"class_{i + 1:02d}"}
        for i in range(80)
    ]
    with open(path, "w") as out:
        out.write('{"info": {"description": "benchmark", "version": "1.0", "year": 2017}, ')
        out.write(
            '"licenses": [{"url": "http://example.org/license", "id": 1, "name": "benchmark"}], '
        )
        out.write('"images": [')
        for i in range(1, n_images + 1):
            record = {
                "license": 1,
                "file_name": f"{i:012d}.jpg",
                "coco_url": f"http://images.example.org/{i:012d}.jpg",
                "height": 480,
                "width": 640,
                "date_captured": "2013-11-14 16:28:13",
                "flickr_url": f"http://farm.example.org/{i}.jpg",
                "id": i,
            }
            out.write(("" if i == 1 else ", ") + json.dumps(record))
        out.write('], "annotations": [')
        chunk = 10_000
        for start in range(0, n_annotations, chunk):
            parts = []
            for j in range(start, min(start + chunk, n_annotations)):
                n_vertices = int(rng.integers(8, 41))
                cx, cy = rng.uniform(50, 590), rng.uniform(50, 430)
                radius = rng.uniform(5, 45)
                angles = np.sort(rng.uniform(0, 2 * np.pi, n_vertices))
                xs = np.round(cx + radius * np.cos(angles), 2)
                ys = np.round(cy + radius * np.sin(angles), 2)
                polygon = np.column_stack([xs, ys]).ravel().tolist()
                x0, y0 = float(xs.min()), float(ys.min())
                w, h = float(xs.max()) - x0, float(ys.max()) - y0
                record = {
                    "segmentation": [polygon],
                    "area": round(0.6 * w * h, 4),
                    "iscrowd": 0,
                    "image_id": int(image_of[j]),
                    "bbox": [x0, y0, round(w, 2), round(h, 2)],
                    "category_id": int(rng.integers(1, 81)),
                    "id": j + 1,
                }
                parts.append(json.dumps(record))
            out.write(("" if start == 0 else ", ") + ", ".join(parts))
        out.write('], "categories": ' + json.dumps(categories) + "}")


def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``command``; return (wall seconds, peak RSS in MB of that child, its output)."""
    started = time.perf_counter()
    # A fresh interpreter per measurement, so ru_maxrss is this child's own peak.
    wrapper = [
        sys.executable,
        "-c",
        "import resource, subprocess, sys;"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "sys.stdout.write(p.stdout + p.stderr);"
        "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        "sys.exit(p.returncode)",
        *command,
    ]
    done = subprocess.run(wrapper, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    peak_kb = int(done.stdout.rsplit("PEAK_KB", 1)[1].split()[0])
    return seconds, peak_kb / 1024, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=120_000)
    parser.add_argument("--annotations", type=int, default=850_000)
    parser.add_argument(
        "--postgres", action="store_true", help="Import into a scratch PostgreSQL database."
    )
    parser.add_argument("--keep", type=Path, help="Reuse/keep the generated file at this path.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        tmpdir = Path(tmp)
        instances = args.keep or tmpdir / "instances.json"
        if not instances.exists():
            started = time.perf_counter()
            write_coco(instances, n_images=args.images, n_annotations=args.annotations)
            print(
                f"generated {instances} ({instances.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s"
            )
        (tmpdir / "images").mkdir()

        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "studyplatform.settings.dev",
            "STUDYPLATFORM_DATA_DIR": str(tmpdir),
        }
        if args.postgres:
            env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/studyplatform_bench"
            subprocess.run(
                [
                    "dropdb",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "--if-exists",
                    "studyplatform_bench",
                ],
                check=True,
            )
            subprocess.run(
                ["createdb", "-h", "127.0.0.1", "-U", "postgres", "studyplatform_bench"], check=True
            )
        else:
            env.pop("DATABASE_URL", None)
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True, cwd=ROOT)
        try:
            ours_s, ours_mb, output = run_measured(
                [
                    *manage,
                    "import_coco",
                    "--archive",
                    "bench",
                    str(instances),
                    str(tmpdir / "images"),
                ],
                env,
            )
            again_s, _, again = run_measured(
                [
                    *manage,
                    "import_coco",
                    "--archive",
                    "bench",
                    str(instances),
                    str(tmpdir / "images"),
                ],
                env,
            )
            peer_s, peer_mb, _ = run_measured(
                [sys.executable, "-c", f"import json; json.load(open({str(instances)!r}))"], env
            )
        finally:
            if args.postgres:
                subprocess.run(
                    [
                        "dropdb",
                        "-h",
                        "127.0.0.1",
                        "-U",
                        "postgres",
                        "--if-exists",
                        "studyplatform_bench",
                    ],
                    check=False,
                )

    assert "Imported" in output, output
    assert "Already imported" in again, again
    database = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"\nCOCO import: {args.images:,} images, {args.annotations:,} annotations, into {database}"
    )
    print(f"{'':28}{'ours':>10}{'peer':>10}{'limit':>10}{'ours/peer':>11}{'ours/limit':>12}")
    print(
        f"{'wall time (s)':28}{ours_s:10.1f}{peer_s:10.1f}{TIME_LIMIT_S:10.0f}{ours_s / peer_s:11.2f}{ours_s / TIME_LIMIT_S:12.2f}"
    )
    print(
        f"{'peak memory (MB)':28}{ours_mb:10.0f}{peer_mb:10.0f}{MEMORY_LIMIT_MB:10.0f}{ours_mb / peer_mb:11.2f}{ours_mb / MEMORY_LIMIT_MB:12.2f}"
    )
    print(f"{'re-import, same file (s)':28}{again_s:10.1f}")
    print("peer: json.load of the file (pycocotools' first step), parse only, no database writes")
    ok = ours_s <= TIME_LIMIT_S and ours_mb <= MEMORY_LIMIT_MB
    print("within limits" if ok else "OVER A LIMIT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
