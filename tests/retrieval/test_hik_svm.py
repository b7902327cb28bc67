"""`retrieval.hik_svm`: the fast HIK SVM agrees with scikit-learn's precomputed-kernel SVC.

One contract for every scoring backend (numpy tables, torch tables, the compiled numba kernel):
decision values equal ``SVC(kernel="precomputed").decision_function`` on the HIK Gram matrix to
1e-6 of the value range, on random, clustered and degenerate data (hypothesis) and on features of
the synthetic archive.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.svm import SVC

from retrieval import hik_svm as hik_module
from retrieval.hik_svm import HikSvmReranker, hik_gram
from tests.conftest import BACKENDS

HAS_NUMBA = hik_module._compiled_kernel() is not None
NUMBA = pytest.param(
    "numba", marks=pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed")
)
# Every scoring backend: numpy, torch on the CPU (and CUDA where present), the numba kernel.
SCORING_BACKENDS = [*BACKENDS, NUMBA]
CPU_BACKENDS = ["numpy", "cpu", NUMBA]


def reference(X, y, T, C=2.0, positive_weight=None):
    """scikit-learn on the exact HIK Gram matrices (float64), SMQTK's class weight by default."""
    n_pos, n_neg = int(np.sum(y == 1)), int(np.sum(y == 0))
    weight = max(1.0, n_neg / n_pos) if positive_weight is None else positive_weight
    gram = np.minimum(X[:, None, :], X[None, :, :]).sum(axis=2, dtype=np.float64)
    svc = SVC(kernel="precomputed", C=C, class_weight={0: 1.0, 1: weight}).fit(gram, y)
    test_gram = np.minimum(T[:, None, :], X[None, :, :]).sum(axis=2, dtype=np.float64)
    return svc.decision_function(test_gram)


def assert_close_to_reference(values, expected):
    # Relative to the values' range; the 1e-3 floor (an absolute 1e-9) covers degenerate problems
    # whose decision values are all float64 rounding noise around 0.
    scale = max(np.ptp(expected), np.abs(expected).max(), 1e-3)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-6 * scale)


def l1_rows(rng, n_rows, n_dims):
    rows = rng.random((n_rows, n_dims)).astype(np.float32)
    return rows / rows.sum(axis=1, keepdims=True)


def clustered(rng, n_rows, n_dims, n_clusters=5):
    centres = rng.dirichlet(np.full(n_dims, 0.3), size=n_clusters)
    labels = rng.integers(0, n_clusters, size=n_rows)
    rows = np.array([rng.dirichlet(200 * centres[label] + 0.01) for label in labels])
    return rows.astype(np.float32), labels


# ----------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("backend", SCORING_BACKENDS)
@pytest.mark.parametrize("data", ["random", "clustered"])
@pytest.mark.parametrize("n_dims", [1, 5, 300])
def test_decision_values_equal_scikit_learn(backend, data, n_dims):
    rng = np.random.default_rng(n_dims)
    if data == "random":
        X, T = l1_rows(rng, 21, n_dims), l1_rows(rng, 400, n_dims)
        y = np.r_[np.ones(11, np.int64), np.zeros(10, np.int64)]
    else:
        rows, labels = clustered(rng, 421, n_dims)
        X, T, y = rows[:21], rows[21:], (labels[:21] == labels[0]).astype(np.int64)
    model = HikSvmReranker(device=backend, chunk_rows=37).fit(X, y)
    values = model.decision_function(T)
    assert values.shape == (len(T),)
    assert values.dtype == np.float64
    assert_close_to_reference(values, reference(X, y, T))


@pytest.mark.parametrize("backend", SCORING_BACKENDS)
def test_sign_convention_higher_is_more_relevant(backend):
    rng = np.random.default_rng(1)
    rows, labels = clustered(rng, 200, 32, n_clusters=2)
    y = (labels == 0).astype(np.int64)
    values = HikSvmReranker(device=backend).fit(rows, y).decision_function(rows)
    assert values[y == 1].min() > values[y == 0].max()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_memmap_is_scored_like_an_array(tmp_path, backend):
    rng = np.random.default_rng(2)
    X, T = l1_rows(rng, 12, 64), l1_rows(rng, 1000, 64)
    y = np.r_[np.ones(4, np.int64), np.zeros(8, np.int64)]
    np.save(tmp_path / "t.npy", T)
    mapped = np.load(tmp_path / "t.npy", mmap_mode="r")
    model = HikSvmReranker(device=backend, chunk_rows=128).fit(X, y)
    np.testing.assert_array_equal(model.decision_function(mapped), model.decision_function(T))


def test_backends_and_chunk_sizes_agree():
    rng = np.random.default_rng(3)
    X, T = l1_rows(rng, 30, 100), l1_rows(rng, 777, 100)
    y = (rng.random(30) < 0.4).astype(np.int64)
    y[:2] = [0, 1]
    devices = ("numpy", "cpu", "numba") if HAS_NUMBA else ("numpy", "cpu")
    values = [
        HikSvmReranker(device=device, chunk_rows=rows).fit(X, y).decision_function(T)
        for device in devices
        for rows in (1, 50, None)
    ]
    for other in values[1:]:
        np.testing.assert_allclose(other, values[0], rtol=0, atol=1e-12)


@st.composite
def feedback_problems(draw):
    """Small training and test sets with zeros, duplicated rows and repeated values."""
    n_dims = draw(st.integers(1, 9))
    n_train = draw(st.integers(2, 10))
    values = st.sampled_from([0.0, 0.0, 0.125, 0.25, 0.5, 1.0, 3.0]) | st.floats(
        0, 1, width=32, allow_subnormal=False
    )
    X = draw(arrays(np.float32, (n_train, n_dims), elements=values))
    if draw(st.booleans()):
        X[-1] = X[0]  # a duplicated training row
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n_train, max_size=n_train)))
    y[:2] = [1, 0]  # both classes
    T = draw(arrays(np.float32, (draw(st.integers(1, 12)), n_dims), elements=values))
    T = np.concatenate([T, X[:2], np.zeros((1, n_dims), np.float32)])  # training rows, zeros
    return X, y, T


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    problem=feedback_problems(),
    backend=st.sampled_from(["numpy", "cpu", "numba"] if HAS_NUMBA else ["numpy", "cpu"]),
)
def test_decision_values_equal_scikit_learn_on_any_small_problem(problem, backend):
    X, y, T = problem
    values = HikSvmReranker(device=backend).fit(X, y).decision_function(T)
    assert_close_to_reference(values, reference(X, y, T))


@settings(max_examples=30, deadline=None)
@given(value=st.floats(0, 1, width=32), n_dims=st.integers(1, 6))
def test_all_equal_features_give_one_value(value, n_dims):
    X = np.full((4, n_dims), value, dtype=np.float32)
    y = np.array([1, 0, 1, 0])
    T = np.full((3, n_dims), value, dtype=np.float32)
    values = HikSvmReranker().fit(X, y).decision_function(T)
    assert np.ptp(values) == 0
    assert_close_to_reference(values, reference(X, y, T))


@pytest.fixture(scope="module")
def synthetic_features(tmp_path_factory):
    """SynthNet fixture features (n_images, D), L1-normalised, of a small synthetic archive."""
    from retrieval.backbones import BackboneConfig, build_backbone
    from retrieval.extraction import extract_features, load_features
    from retrieval.fixture_backbone import read_multilabel_targets
    from retrieval.synthetic import generate_archive

    folder = tmp_path_factory.mktemp("synthetic-120")
    generate_archive(folder, n_images=120, seed=5, image_size=128)
    paths, targets, _, _ = read_multilabel_targets(folder)
    backbone = build_backbone(BackboneConfig(name="synthnet", weights="fixture", image_size=128))
    extract_features(backbone, paths, folder / "features.npy", batch_size=40)
    return np.asarray(load_features(folder / "features.npy")), targets


@pytest.mark.parametrize("backend", SCORING_BACKENDS)
def test_decision_values_equal_scikit_learn_on_the_synthetic_archive(backend, synthetic_features):
    features, targets = synthetic_features
    # One query's class: the 10 first images holding it relevant, 10 without it not relevant.
    target_class = int(np.argmax(targets.sum(axis=0)))
    holding = np.flatnonzero(targets[:, target_class])
    missing = np.flatnonzero(~targets[:, target_class].astype(bool))
    rows = np.r_[holding[:11], missing[:10]]
    X, y = features[rows], np.r_[np.ones(11, np.int64), np.zeros(10, np.int64)]
    values = HikSvmReranker(device=backend).fit(X, y).decision_function(features)
    assert_close_to_reference(values, reference(X, y, features))


# ----------------------------------------------------------------------------- the backends


def test_without_cuda_the_default_backend_is_the_compiled_kernel_when_numba_is_present(
    monkeypatch,
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hik_module._resolve_backend(None) == ("numba" if HAS_NUMBA else "numpy", None)
    assert hik_module._resolve_backend("numpy") == ("numpy", None)
    assert hik_module._resolve_backend("cpu")[0] == "torch"


def test_without_numba_the_default_falls_back_to_numpy_with_the_same_values(monkeypatch):
    import torch

    rng = np.random.default_rng(8)
    X, T = l1_rows(rng, 21, 50), l1_rows(rng, 300, 50)
    y = np.r_[np.ones(11, np.int64), np.zeros(10, np.int64)]
    model = HikSvmReranker().fit(X, y)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hik_module, "_compiled_kernel", lambda: None)
    scored = []
    original = HikSvmReranker._score_numpy
    monkeypatch.setattr(
        HikSvmReranker,
        "_score_numpy",
        lambda self, *args: scored.append(True) or original(self, *args),
    )
    values = model.decision_function(T)
    assert scored == [True]
    assert_close_to_reference(values, reference(X, y, T))
    with pytest.raises(ImportError, match="needs the numba package"):
        HikSvmReranker(device="numba").fit(X, y).decision_function(T)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed")
@pytest.mark.parametrize(
    "layout",
    ["float64", "fortran-order", "strided", "int", "one row"],
)
def test_the_compiled_kernel_scores_any_layout_and_dtype_like_numpy(layout):
    rng = np.random.default_rng(9)
    X = l1_rows(rng, 21, 40)
    y = np.r_[np.ones(11, np.int64), np.zeros(10, np.int64)]
    T = l1_rows(rng, 200, 40)
    T = {
        "float64": T.astype(np.float64),
        "fortran-order": np.asfortranarray(T),
        "strided": np.repeat(T, 2, axis=0)[::2],
        "int": (T * 1000).astype(np.int32),
        "one row": T[:1],
    }[layout]
    model = HikSvmReranker(device="numba", chunk_rows=33).fit(X, y)
    values = model.decision_function(T)
    model.device = "numpy"
    np.testing.assert_allclose(values, model.decision_function(T), rtol=0, atol=1e-12)
    assert_close_to_reference(values, reference(X, y, np.asarray(T, dtype=np.float64)))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_concurrent_calls_from_threads_give_identical_values(backend):
    rng = np.random.default_rng(10)
    X = l1_rows(rng, 21, 256)
    y = np.r_[np.ones(11, np.int64), np.zeros(10, np.int64)]
    tests = [l1_rows(rng, 3000, 256) for _ in range(4)]
    model = HikSvmReranker(device=backend).fit(X, y)
    alone = [model.decision_function(T) for T in tests]
    together: list = [None] * 8

    def score(slot: int) -> None:
        together[slot] = model.decision_function(tests[slot % 4])

    threads = [threading.Thread(target=score, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for slot, values in enumerate(together):
        np.testing.assert_array_equal(values, alone[slot % 4])  # bit for bit: deterministic


# ----------------------------------------------------------------------------- the tables


def test_tables_hold_the_sorted_support_values_and_their_partial_sums():
    rng = np.random.default_rng(4)
    X = l1_rows(rng, 9, 6)
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0])
    model = HikSvmReranker().fit(X, y)
    n_support = model.support_.size
    assert model.knots_.shape == (6, n_support)
    assert model.prefix_.shape == model.suffix_.shape == (6, n_support + 1)
    np.testing.assert_array_equal(model.knots_, np.sort(model.support_vectors_, axis=0).T)
    np.testing.assert_allclose(model.suffix_[:, 0], model.dual_coef_.sum(), atol=1e-12)
    np.testing.assert_allclose(
        model.prefix_[:, -1], model.dual_coef_ @ model.support_vectors_, atol=1e-12
    )
    np.testing.assert_array_equal(model.support_vectors_, X[model.support_])


def test_hik_gram_is_the_sum_of_minima():
    a = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=np.float32)
    b = np.array([[0.1, 0.6, 0.3]], dtype=np.float32)
    np.testing.assert_allclose(hik_gram(a, b), [[0.1 + 0.5 + 0.0], [0.1 + 0.3 + 0.3]], atol=1e-7)


def test_auto_positive_weight_is_smqtks_max_of_one_and_the_class_ratio():
    rng = np.random.default_rng(5)
    X = l1_rows(rng, 12, 8)
    few_positives = np.r_[np.ones(3, np.int64), np.zeros(9, np.int64)]
    many_positives = np.r_[np.ones(9, np.int64), np.zeros(3, np.int64)]
    assert HikSvmReranker().fit(X, few_positives).positive_weight_ == 3.0
    assert HikSvmReranker().fit(X, many_positives).positive_weight_ == 1.0
    model = HikSvmReranker(C=0.5, positive_weight=2.5).fit(X, few_positives)
    assert model.positive_weight_ == 2.5
    assert_close_to_reference(
        model.decision_function(X), reference(X, few_positives, X, C=0.5, positive_weight=2.5)
    )


# ----------------------------------------------------------------------------- estimator contract


def test_the_estimator_contract_holds():
    model = HikSvmReranker(C=3.0, positive_weight=1.5, chunk_rows=10, device="numpy")
    config = model.get_config()
    assert config == {"C": 3.0, "positive_weight": 1.5, "chunk_rows": 10, "device": "numpy"}
    assert type(model)(**config).get_config() == config
    assert clone(model).get_params() == model.get_params()
    assert not [name for name in vars(model) if name.endswith("_")]
    rng = np.random.default_rng(6)
    X, y = l1_rows(rng, 6, 4), np.array([1, 0, 1, 0, 0, 0])
    assert model.fit(X, y) is model
    learned = [name for name in vars(model) if name.endswith("_")]
    assert {"support_vectors_", "dual_coef_", "intercept_", "knots_"} <= set(learned)
    assert model.get_config() == config  # fitting changes no parameter
    np.testing.assert_array_equal(model.score(X), model.decision_function(X))


def test_the_constructor_only_stores_and_fit_validates():
    model = HikSvmReranker(C=-1.0)  # no error yet: scikit-learn convention
    assert model.C == -1.0
    with pytest.raises(ValueError, match="C must be a positive number"):
        model.fit(np.ones((2, 2)), [1, 0])
    with pytest.raises(ValueError, match="positive_weight"):
        HikSvmReranker(positive_weight="balanced").fit(np.ones((2, 2)), [1, 0])


def test_scoring_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        HikSvmReranker().decision_function(np.ones((2, 3)))


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.ones(4), [1, 0, 1, 0], "X must be 2-D"),
        (np.ones((4, 2)), [1, 1, 1, 1], "need relevant and not-relevant examples"),
        (np.ones((4, 2)), [1, 0, 2, 0], "only 1 .relevant. and 0"),
        (np.ones((4, 2)), [1, 0, 1], r"y must have shape \(4,\)"),
        (np.array([[0.5, np.nan], [1, 0]]), [1, 0], "X must be finite"),
    ],
)
def test_bad_training_input_is_refused(X, y, message):
    with pytest.raises(ValueError, match=message):
        HikSvmReranker().fit(X, y)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bad_scoring_input_is_refused_and_non_finite_rows_are_named(backend):
    rng = np.random.default_rng(7)
    model = HikSvmReranker(device=backend).fit(l1_rows(rng, 6, 4), np.array([1, 0, 1, 0, 0, 0]))
    with pytest.raises(ValueError, match="has 5 dimensions; the model was fitted on 4"):
        model.decision_function(np.ones((3, 5)))
    T = l1_rows(rng, 8, 4)
    T[2, 1] = np.nan
    T[5, 0] = np.inf
    with pytest.raises(ValueError, match=r"non-finite values .* rows 2, 5"):
        model.decision_function(T)
