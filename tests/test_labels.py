"""Suspect labels (backprop.labels): folds that never see the images they predict, flipped labels
found on a LocalCluster (with a deadline; the cluster is always stopped) and cleanlab's ranking.
`backprop labels` is tested in test_labels_cli.py."""

import dataclasses

import numpy as np
import pytest

from backprop import labels
from backprop.data import load_task
from backprop.data.tasks import Dataset
from backprop.errors import InputError

CLUSTER_DEADLINE = 200  # seconds a test's folds may take on the (loaded) machine before it fails


def flipped(data, share, seed=0):
    """A copy of `data` whose labels of `share` of the training images are changed to another class."""
    rng = np.random.RandomState(seed)
    flips = rng.choice(len(data.y_train), int(round(share * len(data.y_train))), replace=False)
    labels_ = data.y_train.copy()
    labels_[flips] = (labels_[flips] + rng.randint(1, data.n_classes, len(flips))) % data.n_classes
    return dataclasses.replace(data, y_train=labels_), flips


def test_folds_are_stratified_disjoint_and_cover_every_image():
    y = np.repeat(np.arange(3), [50, 31, 19])
    parts = labels.split_folds(y, 5, seed=3)
    together = np.concatenate(parts)
    assert sorted(together) == list(range(len(y)))  # each image in exactly one fold
    for part in parts:
        assert np.all(np.abs(np.bincount(y[part], minlength=3) - np.array([10, 6.2, 3.8])) <= 1)
    assert [p.tolist() for p in parts] == [p.tolist() for p in labels.split_folds(y, 5, seed=3)]


def test_probabilities_are_out_of_fold():
    """Random labels carry no signal: a network that saw an image remembers its label (train accuracy
    over 0.9), but each image's probabilities come from the fold that never saw it, so they are right
    only by chance (1/3)."""
    rng = np.random.RandomState(0)
    x = rng.rand(450, 30)
    y = rng.randint(0, 3, 450)
    data = Dataset("noise", x, y, x[:0], y[:0], ["a", "b", "c"], None)
    config = labels.fold_model(layers=[256, 3], dtype="float64", batch_size=None, iterations=150,
                               l2=0.0, lr_schedule="constant", learning_rate=0.03)
    parts = labels.split_folds(y, 3, seed=1)
    outcomes = {}
    for k, held in enumerate(parts):
        train = np.setdiff1d(np.arange(len(y)), held)
        assert not np.intersect1d(train, held).size
        outcomes[k] = labels.train_fold(labels.FoldTask(k, config, train, held), data)
        assert outcomes[k].train_accuracy > 0.9  # it remembers what it saw
    oof = labels.assemble(outcomes, len(y), 3)
    assert sorted(oof.fold_of.tolist()) == sorted(np.repeat(np.arange(3), [len(p) for p in parts]).tolist())
    for k, held in enumerate(parts):
        assert np.all(oof.fold_of[held] == k)
    assert oof.accuracy(y) < 0.45  # what it never saw, it guesses
    np.testing.assert_allclose(oof.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="predicted by no fold"):
        labels.assemble({0: outcomes[0]}, len(y), 3)


def test_flipped_labels_are_found_on_the_local_cluster():
    """4,000 MNIST images, 3% of their labels flipped on purpose: the top 1.5 x 120 suspects hold at
    least 80% of the flips. Five folds, one Dask task each, on a LocalCluster of two workers."""
    data = load_task("mnist", digits=None, subset=4000, dtype="float32")
    noisy, flips = flipped(data, 0.03)
    ended = []
    review = labels.find_suspects(labels.fold_model(iterations=150), data=noisy, folds=5, workers=2,
                                  deadline=CLUSTER_DEADLINE,
                                  on_fold=lambda done, total, outcome: ended.append(outcome))
    held = [outcome.held for outcome in ended]
    assert sorted(np.concatenate(held).tolist()) == list(range(4000))  # each image predicted once
    assert all(outcome.worker.startswith("tcp://") for outcome in ended)  # on the cluster's workers
    assert len({outcome.worker for outcome in ended}) == 2 and review.workers == 2
    top = [suspect.position for suspect in review.suspects[:int(1.5 * len(flips))]]
    recall = len(set(top) & set(flips.tolist())) / len(flips)
    assert recall >= 0.8, recall
    assert review.accuracy > 0.85 and len(review.fold_accuracies) == 5
    first = review.suspects[0]
    assert first.index == data.source_index[first.position]  # named by its place in the training file
    assert first.given == noisy.y_train[first.position] and first.suggested != first.given
    assert 0 <= first.confidence <= 1


def test_a_cancelled_review_stops_its_cluster(monkeypatch):
    from backprop.sweep import cluster

    clusters = []
    connect = cluster.connect

    def watched(*args, **kwargs):
        client, owned = connect(*args, **kwargs)
        clusters.append(owned)
        return client, owned

    monkeypatch.setattr(cluster, "connect", watched)
    data = load_task("mnist", digits=None, subset=500, dtype="float32")
    with pytest.raises(InputError) as error:
        labels.find_suspects(labels.fold_model(iterations=2000), data=data, folds=2, workers=1,
                             cancelled=lambda: True, deadline=CLUSTER_DEADLINE)
    assert error.value.field == "cancelled"
    assert clusters and clusters[0].process.poll() is not None  # the serving process has ended


def test_ranking_by_either_score_puts_a_contradicted_label_first():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.05, 0.95], [0.7, 0.3]] * 10)
    given = np.array([0, 1, 0, 0] * 10)  # every third image says 0 where the network is sure of 1
    for rank_by in ("self_confidence", "normalized_margin"):
        suspects = labels.rank_suspects(given, probabilities, rank_by)
        assert {s.position % 4 for s in suspects[:10]} == {2}
        assert suspects[0].suggested == 1 and suspects[0].confidence == pytest.approx(0.95)
    with pytest.raises(InputError, match="rank_by"):
        labels.rank_suspects(given, probabilities, "loudest")
