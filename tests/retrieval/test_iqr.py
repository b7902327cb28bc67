"""`retrieval.iqr` (SMQTK-style IQR session) and `retrieval.accuracy` (seed 000, Eq. 5).

The synthetic archive mimics the study's difficulty: each image mixes its class's signal (40 %)
with one of 20 "background" patterns shared across classes (60 %), so the raw HIK ranking is
dominated by the background and relevance feedback has something to learn.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from retrieval import iqr as iqr_module
from retrieval.accuracy import retrieval_accuracy
from retrieval.iqr import IqrSession
from retrieval.search import distances, top_k


def study_archive(seed: int = 0, n_classes: int = 20, per_class: int = 100, n_dims: int = 64):
    """(features (n, n_dims) float32 L1-normalised, labels (n,)) of clustered histograms."""
    rng = np.random.default_rng(seed)
    class_patterns = rng.dirichlet(np.full(n_dims, 0.3), size=n_classes)
    background_patterns = rng.dirichlet(np.full(n_dims, 0.3), size=n_classes)
    labels = np.repeat(np.arange(n_classes), per_class)
    backgrounds = rng.integers(0, n_classes, size=labels.size)
    signal = np.array([rng.dirichlet(60 * class_patterns[label] + 0.01) for label in labels])
    clutter = np.array([rng.dirichlet(60 * background_patterns[b] + 0.01) for b in backgrounds])
    features = (0.4 * signal + 0.6 * clutter).astype(np.float32)
    return features / features.sum(axis=1, keepdims=True), labels


@pytest.fixture(scope="module")
def archive():
    return study_archive()


def oracle_round(session: IqrSession, shown: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """The worker marks every shown image by its label, as in seed 000; returns the new ranking."""
    session.adjudicate(positives=shown[relevant[shown]], negatives=shown[~relevant[shown]])
    return session.refine()


# ----------------------------------------------------------------------------- the study loop


def test_two_rounds_of_feedback_raise_top50_accuracy_for_most_queries(archive):
    features, labels = archive
    rng = np.random.default_rng(1)
    before, after = [], []
    for label in range(20):
        query = int(rng.choice(np.flatnonzero(labels == label)))
        relevant = labels == label
        session = IqrSession(features, query)
        initial = session.initial_ranking(50)
        before.append(retrieval_accuracy(initial, relevant, n=50))
        ranking = oracle_round(session, initial[:20], relevant)  # seed 000: top-20 per round
        ranking = oracle_round(session, ranking[:20], relevant)  # two rounds
        after.append(retrieval_accuracy(ranking, relevant, n=50))
    before, after = np.array(before), np.array(after)
    assert (after > before).mean() >= 0.7
    assert after.mean() > before.mean() + 0.2


def test_judged_rows_and_the_query_are_never_ranked(archive):
    features, labels = archive
    session = IqrSession(features, 5)
    shown = session.initial_ranking(20)
    assert 5 not in shown
    relevant = labels == labels[5]
    ranking = oracle_round(session, shown, relevant)
    assert not np.isin(ranking, np.r_[shown, 5]).any()
    assert np.unique(ranking).size == ranking.size
    # Everything else in the working set is ranked.
    expected = np.setdiff1d(session.working_rows(), np.r_[shown, 5])
    np.testing.assert_array_equal(np.sort(ranking), expected)


def test_the_query_counts_as_a_positive(archive, monkeypatch):
    features, _ = archive
    trained = []
    original_fit = iqr_module.HikSvmReranker.fit

    def spy(self, X, y):
        trained.append((np.array(X), np.array(y)))
        return original_fit(self, X, y)

    monkeypatch.setattr(iqr_module.HikSvmReranker, "fit", spy)
    session = IqrSession(features, 7)
    session.adjudicate(negatives=[100, 200])
    session.refine()
    X, y = trained[-1]
    np.testing.assert_array_equal(y, [1, 0, 0])
    np.testing.assert_array_equal(X[0], features[7])

    outside = (features[3] + features[4]) / 2  # a query image outside the archive
    IqrSession(features, outside).refine()
    X, y = trained[-1]
    np.testing.assert_array_equal(X[0], outside)
    assert y[0] == 1


def test_without_negatives_the_farthest_working_set_row_of_each_positive_is_one(
    archive, monkeypatch
):
    features, _ = archive
    trained = []
    original_fit = iqr_module.HikSvmReranker.fit
    monkeypatch.setattr(
        iqr_module.HikSvmReranker,
        "fit",
        lambda self, X, y: trained.append((np.array(X), np.array(y))) or original_fit(self, X, y),
    )
    session = IqrSession(features, 11, neighbours_per_positive=60)
    session.adjudicate(positives=[12, 13])
    session.refine()
    pool = session.working_rows()
    far = distances(features, features[[11, 12, 13]], metric="hik", rows=pool)
    expected = set(pool[np.argmax(far, axis=1)].tolist()) - {11, 12, 13}
    X, y = trained[-1]
    assert y.tolist() == [1, 1, 1] + [0] * len(expected)
    np.testing.assert_array_equal(X[3:], features[sorted(expected)])


def test_the_working_set_is_the_union_of_the_positives_neighbourhoods_and_only_grows(archive):
    features, _ = archive
    session = IqrSession(features, 0, neighbours_per_positive=30)
    np.testing.assert_array_equal(
        session.working_rows(), np.sort(top_k(features, features[0], 30)[0])
    )
    session.adjudicate(positives=[500])
    grown = session.working_rows()
    expected = np.union1d(
        top_k(features, features[0], 30)[0], top_k(features, features[500], 30)[0]
    )
    np.testing.assert_array_equal(grown, expected)
    session.adjudicate(unmark=[500])
    np.testing.assert_array_equal(session.working_rows(), grown)  # SMQTK never shrinks it


def test_working_set_all_ranks_the_whole_archive(archive):
    features, _ = archive
    session = IqrSession(features, 3, working_set="all")
    session.adjudicate(positives=[4], negatives=[1500])
    ranking = session.refine()
    assert ranking.size == len(features) - 3


def test_working_set_all_scores_the_feature_matrix_itself_in_one_call(archive, monkeypatch):
    features, _ = archive
    seen = []
    original = iqr_module.HikSvmReranker.decision_function

    def spy(self, X):
        seen.append(X)
        return original(self, X)

    monkeypatch.setattr(iqr_module.HikSvmReranker, "decision_function", spy)
    session = IqrSession(features, 3, working_set="all")
    session.adjudicate(positives=[4, 7], negatives=[1500, 1600])
    ranking = session.refine()
    assert len(seen) == 1
    assert seen[0] is features  # the fast path: no row view, no copy of the archive
    # The same order as scoring every row and dropping the judged ones afterwards.
    X = features[[3, 4, 7, 1500, 1600]]
    y = np.array([1, 1, 1, 0, 0])
    scores = original(iqr_module.HikSvmReranker().fit(X, y), features)
    unjudged = np.setdiff1d(np.arange(len(features)), [3, 4, 7, 1500, 1600])
    expected = unjudged[np.argsort(-scores[unjudged], kind="stable")]
    np.testing.assert_array_equal(ranking, expected)


def test_initial_ranking_is_the_hik_top_k_without_the_query(archive):
    features, _ = archive
    rows = IqrSession(features, 42).initial_ranking(10)
    np.testing.assert_array_equal(rows, top_k(features, features[42], 10, exclude=[42])[0])


def test_marking_a_row_again_moves_it_and_unmark_withdraws_it(archive):
    features, _ = archive
    session = IqrSession(features, 0)
    session.adjudicate(positives=[1, 2], negatives=[3])
    session.adjudicate(negatives=[2], unmark=[3])
    assert session.positives == {1}
    assert session.negatives == {2}


# ----------------------------------------------------------------------------- state


@pytest.mark.parametrize("query", [17, "outside"])
def test_a_session_survives_a_restart_through_its_json_state(archive, query):
    features, labels = archive
    if query == "outside":
        query = (features[17] + features[18]) / 2
    session = IqrSession(features, query, neighbours_per_positive=100)
    relevant = labels == labels[17]
    ranking = oracle_round(session, session.initial_ranking(20), relevant)
    session.adjudicate(positives=ranking[:3], negatives=ranking[3:6])

    state = json.loads(json.dumps(session.to_state()))
    restored = IqrSession.from_state(state, features)
    assert restored.to_state() == state
    np.testing.assert_array_equal(restored.refine(), session.refine())
    # The state is plain data: ints, floats, strings, lists, None, booleans.
    allowed = (int, float, str, list, type(None), bool)
    assert all(isinstance(value, allowed) for value in state.values())


def test_a_state_for_other_features_is_refused(archive):
    features, _ = archive
    state = IqrSession(features, 0).to_state()
    with pytest.raises(ValueError, match="state is for features of shape"):
        IqrSession.from_state(state, features[:, :10])
    with pytest.raises(ValueError, match="unknown IQR state version"):
        IqrSession.from_state({**state, "version": 99}, features)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("marks", "message"),
    [
        ({"positives": [1, 5000]}, r"positives holds rows outside \[0, 2000\): 5000"),
        ({"negatives": [-3]}, r"negatives holds rows outside \[0, 2000\): -3"),
        (
            {"positives": [1, 2, 9], "negatives": [9, 2]},
            r"both in positives and in negatives: \[2, 9\]",
        ),
        ({"negatives": [4], "unmark": [4]}, r"both in negatives and in unmark: \[4\]"),
        ({"negatives": [0]}, "the query's row 0, which is always a positive"),
        ({"positives": [1.5]}, "integer row indices"),
    ],
)
def test_bad_marks_are_refused_and_change_nothing(archive, marks, message):
    features, _ = archive
    session = IqrSession(features, 0)
    session.adjudicate(positives=[1], negatives=[3])
    before = session.to_state()
    with pytest.raises(ValueError, match=message):
        session.adjudicate(**marks)
    assert session.to_state() == before


@pytest.mark.parametrize(
    ("query", "options", "message"),
    [
        (2000, {}, r"query row 2000 is outside \[0, 2000\)"),
        (np.ones(3), {}, r"query vector must have shape \(64,\)"),
        (np.full(64, np.nan), {}, "query vector must be finite"),
        (0, {"working_set": "everything"}, "unknown working_set 'everything'"),
        (0, {"neighbours_per_positive": 0}, "neighbours_per_positive must be an integer >= 1"),
        (0, {"C": 0}, "C must be a positive number"),
    ],
)
def test_bad_sessions_are_refused(archive, query, options, message):
    features, _ = archive
    with pytest.raises(ValueError, match=message):
        IqrSession(features, query, **options)


# ----------------------------------------------------------------------------- Eq. 5


def test_accuracy_is_the_fraction_of_the_top_n_holding_the_class():
    relevant = np.zeros(100, dtype=bool)
    relevant[[3, 5, 8]] = True
    assert retrieval_accuracy([3, 4, 5, 6], relevant, n=4) == 0.5
    assert retrieval_accuracy(np.array([8, 3, 5, 1, 2]), relevant, n=2) == 1.0
    assert retrieval_accuracy([10, 20, 30], {20, 30, 99}, n=3) == pytest.approx(2 / 3)


def test_accuracy_divides_by_n_even_when_fewer_items_are_ranked():
    assert retrieval_accuracy([1, 2], {1, 2}, n=50) == pytest.approx(2 / 50)
    assert retrieval_accuracy([], {1}, n=50) == 0.0


@pytest.mark.parametrize(
    ("ranking", "relevant", "n", "message"),
    [
        ([1, 2], {1}, 0, "n must be an integer >= 1"),
        ([1, 1, 2], {1}, 3, "more than once"),
        ([1, 200], np.zeros(100, dtype=bool), 2, "outside the relevance mask of 100 rows: 200"),
        ([[1, 2]], {1}, 2, "1-D integers"),
    ],
)
def test_accuracy_refuses_bad_input(ranking, relevant, n, message):
    with pytest.raises(ValueError, match=message):
        retrieval_accuracy(ranking, relevant, n=n)
