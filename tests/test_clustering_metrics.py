"""ACC / NMI / ARI on cases small enough to work out by hand."""

import math

import numpy as np
import pytest

from pipeline.evaluate.clustering import clustering_metrics, unsupervised_accuracy


def test_permuted_labels_score_perfectly():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([2, 2, 0, 0, 1, 1])
    assert clustering_metrics(y_true, y_pred) == pytest.approx({"acc": 1.0, "nmi": 1.0, "ari": 1.0})


def test_hand_computed_values():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 1])
    # Contingency (cluster x label) = [[2, 1], [0, 1]]: best map 0->0, 1->1 gets 3 of 4.
    h_true = math.log(2)
    h_pred = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    mi = 0.5 * math.log(4 / 3) + 0.25 * math.log(2 / 3) + 0.25 * math.log(2)
    # ARI: sum C(n_ij,2) = 1, rows C(3,2)+C(1,2) = 3, cols 1+1 = 2, C(4,2) = 6:
    # expected 3*2/6 = 1, max (3+2)/2 = 2.5, so (1 - 1) / (2.5 - 1) = 0.
    got = clustering_metrics(y_true, y_pred)
    assert got["acc"] == pytest.approx(0.75)
    assert got["nmi"] == pytest.approx(mi / ((h_true + h_pred) / 2))
    assert got["ari"] == pytest.approx(0.0, abs=1e-12)


def test_more_clusters_than_labels_leaves_one_unmatched():
    y_true = np.array([0, 0, 0, 1, 1, 1])
    y_pred = np.array([0, 0, 1, 2, 2, 2])
    assert unsupervised_accuracy(y_true, y_pred) == pytest.approx(5 / 6)


def test_fewer_clusters_than_labels_and_arbitrary_label_values():
    assert unsupervised_accuracy(np.array([5, 5, 9]), np.array([1, 1, 1])) == pytest.approx(2 / 3)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="equal"):
        unsupervised_accuracy(np.array([0, 1]), np.array([0, 1, 1]))
