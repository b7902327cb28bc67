"""The shipped SynthNet fixture retrieves the synthetic classes far better than random weights."""

from __future__ import annotations

import hashlib
from io import StringIO

import numpy as np
import pytest
import torch

from retrieval.backbones import BackboneConfig, build_backbone
from retrieval.extraction import extract_features, load_features
from retrieval.fixture_backbone import (
    SYNTHNET_VERSION,
    SynthNet,
    average_precision,
    load_synthnet_file,
    read_multilabel_targets,
    train_synthnet,
)
from retrieval.synthetic import CLASSES, generate_archive

TOP_N = 50  # seed 000, Sec. 3: "Our user study used N = 50"


def hik_top_n(features: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n most similar images to each image by histogram intersection.

    features : ndarray of shape (n_images, n_dims), L1-normalised. Returns (n_images, n),
    most similar first, the query itself excluded.
    """
    neighbours = np.empty((len(features), n), dtype=np.int64)
    for start in range(0, len(features), 50):
        block = features[start : start + 50]
        similarity = np.minimum(block[:, None, :], features[None, :, :]).sum(axis=2)
        similarity[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
        neighbours[start : start + len(block)] = np.argsort(-similarity, axis=1, kind="stable")[
            :, :n
        ]
    return neighbours


def mean_top_n_accuracy(
    features: np.ndarray, targets: np.ndarray, query_class: np.ndarray
) -> float:
    """seed 000, Eq. 5 averaged over queries: fraction of the top N holding the target class."""
    neighbours = hik_top_n(features, TOP_N)
    hits = targets[neighbours, query_class[:, None]]
    return float(hits.mean())


@pytest.fixture(scope="module")
def evaluation_archive(tmp_path_factory):
    # Seed 11: the fixture was trained on seed 0, so these are unseen images.
    folder = tmp_path_factory.mktemp("evaluation-400")
    generate_archive(folder, n_images=400, seed=11, image_size=160)
    paths, targets, _, _ = read_multilabel_targets(folder)
    # One query per image, its target one of the classes annotated in it, chosen at random.
    rng = np.random.default_rng(0)
    query_class = np.array([rng.choice(np.flatnonzero(row)) for row in targets])
    return paths, targets, query_class


def test_fixture_features_beat_random_weights_on_top_50_retrieval(evaluation_archive, tmp_path):
    paths, targets, query_class = evaluation_archive
    accuracy = {}
    for weights in ("fixture", "none"):
        backbone = build_backbone(BackboneConfig(name="synthnet", weights=weights, image_size=128))
        extract_features(backbone, paths, tmp_path / f"{weights}.npy", batch_size=50)
        features = np.asarray(load_features(tmp_path / f"{weights}.npy"))
        accuracy[weights] = mean_top_n_accuracy(features, targets, query_class)
    chance = float(targets[:, query_class].mean())
    # A class in k images can fill at most k - 1 of the top 50.
    ceiling = float(np.mean(np.minimum(targets.sum(axis=0)[query_class] - 1, TOP_N) / TOP_N))
    print(
        f"mean top-{TOP_N} accuracy: fixture {accuracy['fixture']:.3f}, "
        f"random weights {accuracy['none']:.3f}, class frequency {chance:.3f}, "
        f"ceiling {ceiling:.3f}"
    )

    assert accuracy["fixture"] > accuracy["none"] + 0.25, accuracy
    assert accuracy["fixture"] > 0.7 * ceiling, accuracy


def test_fixture_metadata_describes_its_training():
    _, metadata = load_synthnet_file(
        build_backbone(
            BackboneConfig(name="synthnet", weights="fixture", image_size=128)
        ).weights_info["path"]
    )
    assert metadata["classes"] == [spec.name for spec in CLASSES]
    assert metadata["category_ids"] == [spec.category_id for spec in CLASSES]
    assert metadata["seed"] == 0
    assert metadata["image_size"] == 128
    assert "seed=0, n_images=2000" in metadata["archive"]
    assert metadata["held_out_map"] > 0.8
    assert 0 < metadata["final_train_loss"] < 0.2


def test_training_is_deterministic_and_writes_a_loadable_file(tmp_path):
    archive = tmp_path / "archive"
    generate_archive(archive, n_images=40, seed=5, image_size=64)
    steps = []
    results = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        results.append(
            train_synthnet(
                archive,
                tmp_path / run / "synthnet.pt",
                epochs=2,
                seed=3,
                image_size=48,
                batch_size=12,
                progress=lambda step, total, loss: steps.append((step, total)),
            )
        )

    first, second = results
    assert first["sha256"] == second["sha256"]
    assert (
        first["sha256"] == hashlib.sha256((tmp_path / "a" / "synthnet.pt").read_bytes()).hexdigest()
    )
    assert steps[:3] == [(1, 6), (2, 6), (3, 6)]
    assert first["train_images"] == 36
    assert first["held_out_images"] == 4
    state, metadata = load_synthnet_file(tmp_path / "a" / "synthnet.pt")
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert metadata["epochs"] == 2
    backbone = build_backbone(
        BackboneConfig(name="synthnet", weights=str(tmp_path / "a" / "synthnet.pt"), image_size=48)
    )
    assert backbone.preprocess.mean == tuple(metadata["mean"])
    assert backbone.weights_sha256 == first["sha256"]


def test_a_file_of_another_synthnet_version_is_refused(tmp_path):
    path = tmp_path / "old.pt"
    torch.save(
        {
            "format": "studyplatform-backbone",
            "architecture": "synthnet",
            "version": "synthnet-0",
            "state_dict": SynthNet().state_dict(),
            "metadata": {},
        },
        path,
    )
    with pytest.raises(ValueError, match=SYNTHNET_VERSION):
        build_backbone(BackboneConfig(name="synthnet", weights=str(path), image_size=64))


def test_average_precision_matches_a_hand_computed_ranking():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.3], [0.1, 0.4]])
    targets = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    # Class 0: positives at ranks 1 and 3 -> (1/1 + 2/3) / 2. Class 1: no positives.
    ap = average_precision(scores, targets)
    assert ap[0] == pytest.approx((1 + 2 / 3) / 2)
    assert np.isnan(ap[1])


def test_the_management_command_trains_and_reports(tmp_path):
    from django.core.management import call_command

    out = StringIO()
    call_command(
        "train_fixture_backbone",
        images=80,
        seed=2,
        epochs=1,
        out=tmp_path / "synthnet.pt",
        verbosity=0,
        stdout=out,
    )

    _, metadata = load_synthnet_file(tmp_path / "synthnet.pt")
    assert metadata["seed"] == 2
    assert metadata["train_images"] == 72
    assert "held-out mAP" in out.getvalue()
    assert "sha256" in out.getvalue()
