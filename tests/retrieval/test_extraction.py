"""Feature extraction writes one L1-normalised row per image, resumes after a kill, never mixes runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from retrieval.backbones import BackboneConfig, build_backbone, features_l1_normalise
from retrieval.extraction import (
    ExtractionResult,
    extract_features,
    extraction_state,
    load_features,
    sidecar_path,
)
from retrieval.synthetic import generate_archive

ROOT = Path(__file__).resolve().parents[2]
CONFIG = BackboneConfig(name="synthnet", weights="fixture", image_size=64)


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("archive-48")
    generate_archive(folder, n_images=48, seed=21, image_size=96)
    return sorted(str(path) for path in (folder / "images").glob("*.jpg"))


@pytest.fixture(scope="module")
def backbone():
    return build_backbone(CONFIG)


@pytest.fixture(scope="module")
def reference(image_paths, backbone, tmp_path_factory) -> np.ndarray:
    """An uninterrupted fp32 run, batch size 8."""
    out = tmp_path_factory.mktemp("reference") / "features.npy"
    extract_features(backbone, image_paths, out, batch_size=8)
    return np.array(load_features(out))


def test_writes_one_l1_normalised_float32_row_per_image(image_paths, backbone, tmp_path):
    calls = []

    result = extract_features(
        backbone,
        image_paths,
        tmp_path / "f.npy",
        batch_size=10,
        progress=lambda done, total: calls.append((done, total)),
    )

    features = load_features(tmp_path / "f.npy")
    assert isinstance(result, ExtractionResult)
    assert result.complete
    assert (result.n_rows, result.dim) == (48, 256)
    assert result.failed == ()
    assert result.backbone_config == CONFIG.to_dict()
    assert result.weights_sha256 == backbone.weights_sha256
    assert features.shape == (48, 256)
    assert features.dtype == np.float32
    np.testing.assert_allclose(features.sum(axis=1), 1.0, rtol=1e-5)
    assert (np.asarray(features) >= 0).all()
    assert calls == [(10, 48), (20, 48), (30, 48), (40, 48), (48, 48)]


def test_rows_match_a_direct_forward_pass_in_image_order(image_paths, backbone, reference):
    chosen = [0, 17, 47]
    batch = torch.stack([backbone.preprocess(Image.open(image_paths[i])) for i in chosen])
    with torch.inference_mode():
        direct = features_l1_normalise(backbone(batch)).numpy()
    np.testing.assert_allclose(reference[chosen], direct, rtol=1e-4, atol=1e-6)


def test_the_sidecar_records_rows_failures_and_the_backbone(image_paths, backbone, tmp_path):
    extract_features(backbone, image_paths, tmp_path / "f.npy", batch_size=16)

    state = json.loads(sidecar_path(tmp_path / "f.npy").read_text())
    assert state == extraction_state(tmp_path / "f.npy")
    assert state["rows_done"] == 48
    assert state["complete"] is True
    assert state["failed"] == []
    assert state["identity"]["backbone"] == CONFIG.to_dict()
    assert state["identity"]["weights_sha256"] == backbone.weights_sha256
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_after_sigkill_gives_the_same_array_as_an_uninterrupted_run(
    image_paths, backbone, reference, tmp_path
):
    out = tmp_path / "killed.npy"
    (tmp_path / "paths.json").write_text(json.dumps(image_paths))
    # The child reports each batch and then dawdles, so that it is surely killed mid-run.
    child = textwrap.dedent(
        f"""
        import json, sys, time
        from retrieval.backbones import BackboneConfig, build_backbone
        from retrieval.extraction import extract_features

        paths = json.loads(open({str(tmp_path / "paths.json")!r}).read())
        backbone = build_backbone(BackboneConfig.from_dict({CONFIG.to_dict()!r}))

        def progress(done, total):
            print(done, flush=True)
            time.sleep(0.5)

        extract_features(backbone, paths, {str(out)!r}, batch_size=8, progress=progress)
        print("finished", flush=True)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", child],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        for line in process.stdout:
            if line.strip() == "16":
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    state = extraction_state(out)
    assert 16 <= state["rows_done"] < 48
    assert not state["complete"]
    with pytest.raises(ValueError, match="incomplete"):
        load_features(out)

    resumed_from = state["rows_done"]
    calls = []
    result = extract_features(
        backbone,
        image_paths,
        out,
        batch_size=8,
        progress=lambda done, total: calls.append(done),
    )

    assert result.complete
    assert calls[0] == resumed_from + 8  # continued, did not start over
    np.testing.assert_array_equal(load_features(out), reference)


def test_should_stop_stops_between_batches_and_a_second_call_finishes(
    image_paths, backbone, reference, tmp_path
):
    out = tmp_path / "f.npy"
    stopped = extract_features(backbone, image_paths, out, batch_size=8, should_stop=lambda: True)
    assert not stopped.complete
    assert stopped.rows_done == 8
    assert np.count_nonzero(load_features(out, allow_incomplete=True)[8:]) == 0

    finished = extract_features(backbone, image_paths, out, batch_size=8)

    assert finished.complete
    np.testing.assert_array_equal(load_features(out), reference)


def test_a_complete_file_is_not_recomputed(image_paths, backbone, tmp_path):
    out = tmp_path / "f.npy"
    extract_features(backbone, image_paths, out, batch_size=16)
    before = out.stat().st_mtime_ns
    calls = []

    again = extract_features(backbone, image_paths, out, batch_size=16, progress=calls.append)

    assert again.complete
    assert calls == []
    assert out.stat().st_mtime_ns == before


def test_undecodable_images_are_skipped_listed_and_left_zero(image_paths, backbone, tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not a JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(Path(image_paths[0]).read_bytes()[:300])
    missing = tmp_path / "missing.jpg"
    paths = [image_paths[0], str(garbage), image_paths[1], str(truncated), str(missing)]

    result = extract_features(backbone, paths, tmp_path / "f.npy", batch_size=4)

    features = load_features(tmp_path / "f.npy")
    assert result.complete
    assert [(f.row, f.path) for f in result.failed] == [
        (1, str(garbage)),
        (3, str(truncated)),
        (4, str(missing)),
    ]
    assert all(f.reason for f in result.failed)
    assert "FileNotFoundError" in result.failed[2].reason
    np.testing.assert_array_equal(features[[1, 3, 4]], 0.0)
    np.testing.assert_allclose(features[[0, 2]].sum(axis=1), 1.0, rtol=1e-5)
    recorded = extraction_state(tmp_path / "f.npy")["failed"]
    assert [row for row, _, _ in recorded] == [1, 3, 4]


def test_another_backbone_or_image_list_is_refused_and_the_file_left_alone(
    image_paths, backbone, tmp_path
):
    out = tmp_path / "f.npy"
    extract_features(backbone, image_paths[:16], out, batch_size=8)
    array_before = np.array(load_features(out))
    sidecar_before = sidecar_path(out).read_text()
    random = build_backbone(BackboneConfig(name="synthnet", weights="none", image_size=64))

    with pytest.raises(ValueError, match="weights_sha256"):
        extract_features(random, image_paths[:16], out, batch_size=8)
    with pytest.raises(ValueError, match="image_list_sha256"):
        extract_features(backbone, image_paths[1:17], out, batch_size=8)
    with pytest.raises(ValueError, match="precision"):
        extract_features(backbone, image_paths[:16], out, batch_size=8, precision="bf16")

    np.testing.assert_array_equal(load_features(out), array_before)
    assert sidecar_path(out).read_text() == sidecar_before


def test_an_existing_file_without_sidecar_is_never_overwritten(image_paths, backbone, tmp_path):
    out = tmp_path / "f.npy"
    np.save(out, np.ones((3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="unknown origin"):
        extract_features(backbone, image_paths[:4], out)
    np.testing.assert_array_equal(np.load(out), 1.0)


def test_bf16_runs_and_stays_close_to_fp32(image_paths, backbone, reference, tmp_path):
    result = extract_features(
        backbone, image_paths, tmp_path / "bf16.npy", batch_size=16, precision="bf16"
    )

    features = load_features(tmp_path / "bf16.npy")
    assert result.precision == "bf16"
    assert features.dtype == np.float32
    np.testing.assert_allclose(features.sum(axis=1), 1.0, rtol=1e-5)
    # Histogram intersection of L1-normalised rows is 1 - L1 distance / 2: bf16 moves the
    # similarity of an image to its own fp32 features by less than 0.02.
    l1_distance = np.abs(np.asarray(features) - reference).sum(axis=1)
    assert l1_distance.max() < 0.04


def test_fp16_needs_cuda_and_bad_arguments_are_refused(image_paths, backbone, tmp_path):
    with pytest.raises(ValueError, match="CUDA"):
        extract_features(backbone, image_paths, tmp_path / "f.npy", precision="fp16", device="cpu")
    with pytest.raises(ValueError, match="precision"):
        extract_features(backbone, image_paths, tmp_path / "f.npy", precision="int8")
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(backbone, image_paths, tmp_path / "f.npy", batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        extract_features(backbone, [], tmp_path / "f.npy")
    assert not (tmp_path / "f.npy").exists()


def test_worker_processes_give_the_same_rows(image_paths, backbone, reference, tmp_path):
    extract_features(backbone, image_paths, tmp_path / "f.npy", batch_size=8, num_workers=2)
    np.testing.assert_array_equal(load_features(tmp_path / "f.npy"), reference)


def test_loaded_features_are_read_only(image_paths, backbone, tmp_path):
    extract_features(backbone, image_paths[:8], tmp_path / "f.npy")
    features = load_features(tmp_path / "f.npy")
    assert isinstance(features, np.memmap)
    with pytest.raises(ValueError, match="read-only"):
        features[0, 0] = 1.0
