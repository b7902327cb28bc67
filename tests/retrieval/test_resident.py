"""`retrieval.resident`: archive features kept on the compute device, read there in place."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retrieval import resident as resident_module
from retrieval.hik_svm import HikSvmReranker
from retrieval.iqr import IqrSession
from retrieval.resident import ResidentFeatures, resident_features, resident_forget
from retrieval.search import top_k, top_k_batch
from tests.retrieval.test_iqr import study_archive

TORCH_DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    ),
]


class RowReadsOnly:
    """A host array that allows single-row and fancy reads but refuses range slices.

    A torch scan that copied the archive from the host would slice it in chunks; the resident
    path must not.
    """

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.slices = 0

    def __getitem__(self, key):
        if isinstance(key, slice):
            self.slices += 1
        return self.array[key]


@pytest.fixture(scope="module")
def archive():
    return study_archive(n_classes=10, per_class=60)


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_a_search_over_resident_features_is_the_host_search_and_copies_no_chunk(archive, device):
    features, _ = archive
    resident = ResidentFeatures(features, device)
    guard = RowReadsOnly(features)
    resident.host = guard  # every host read now goes through the guard
    for query in (0, 123, 599):
        expected = top_k(features, features[query], 25, exclude=[query], device="numpy")
        found = top_k(resident, features[query], 25, exclude=[query], device=device)
        np.testing.assert_array_equal(found[0], expected[0])
        np.testing.assert_allclose(found[1], expected[1], rtol=0, atol=1e-6)
    subset = np.arange(0, 600, 3)
    expected = top_k_batch(features, features[:4], 10, candidates=subset, device="numpy")
    found = top_k_batch(resident, features[:4], 10, candidates=subset, device=device)
    np.testing.assert_array_equal(found[0], expected[0])
    assert guard.slices == 0


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_the_svm_scores_resident_features_in_place(archive, device):
    features, _ = archive
    X = features[np.r_[0:5, 300:305]]
    y = np.r_[np.ones(5), np.zeros(5)].astype(int)
    model = HikSvmReranker(device="numpy").fit(X, y)
    expected = model.decision_function(features)
    resident = ResidentFeatures(features, device)
    guard = RowReadsOnly(features)
    resident.host = guard
    model.device = device
    np.testing.assert_allclose(model.decision_function(resident), expected, rtol=0, atol=1e-9)
    assert guard.slices == 0


@pytest.mark.parametrize("device", TORCH_DEVICES)
@pytest.mark.parametrize("working_set", ["neighbours", "all"])
def test_an_iqr_session_on_resident_features_ranks_as_on_the_host(archive, device, working_set):
    features, _ = archive
    marks = {"positives": [1, 2, 3, 7], "negatives": [400, 401, 550]}
    rankings = []
    for data, where in ((features, "numpy"), (ResidentFeatures(features, device), device)):
        session = IqrSession(data, 0, working_set=working_set, neighbours_per_positive=50)
        session.device = where
        session.adjudicate(**marks)
        rankings.append(session.refine(limit=40))
    np.testing.assert_array_equal(rankings[1], rankings[0])


def test_the_process_store_loads_each_archive_once_and_keeps_a_bounded_number(archive):
    features, _ = archive
    resident_forget()
    loads = []

    def load(name):
        def loader():
            loads.append(name)
            return features

        return loader

    first = resident_features(("a", 1), load("a"), device="cpu")
    assert resident_features(("a", 1), load("a"), device="cpu") is first
    resident_features(("b", 1), load("b"), device="cpu", keep=2)
    resident_features(("c", 1), load("c"), device="cpu", keep=2)  # drops "a", the oldest
    assert loads == ["a", "b", "c"]
    assert len(resident_module._STORE) == 2
    resident_features(("a", 1), load("a"), device="cpu")
    assert loads == ["a", "b", "c", "a"]
    # A new version of the same file (another modification time) is a new copy.
    resident_features(("a", 2), load("a2"), device="cpu")
    assert loads[-1] == "a2"
    resident_forget()


def test_resident_features_refuse_what_they_cannot_hold():
    with pytest.raises(ValueError, match="2-D"):
        ResidentFeatures(np.zeros(5, np.float32), "cpu")
    with pytest.raises(ValueError, match="float32 or float64"):
        ResidentFeatures(np.zeros((2, 3), np.int64), "cpu")
