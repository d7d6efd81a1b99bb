"""The Data page's Suspect labels: the gallery of a data set's last review, exclude / relabel /
restore kept as a list of label edits beside the data set, Retrain on them, and a review started
from the page that runs on a LocalCluster (with a deadline) and fills the gallery."""

import dataclasses
import io
import time

import numpy as np
import pytest

from backprop import labels
from backprop.config import preset
from backprop.data.tasks import SHIPPED_MNIST
from backprop.errors import InputError
from backprop.labels import Review, Suspect, save_review
from studio import label_review, session

DEADLINE = 240  # seconds a review started from the page may take on the (loaded) machine


def seeded_review(target, indices, suggested):
    """A review of `target` whose suspects are these training images (as `backprop labels` keeps it)."""
    y = target.source.y_train
    suspects = tuple(Suspect(index=int(i), position=int(i), given=int(y[i]), suggested=int(s),
                             confidence=0.97, given_probability=0.01, quality=0.01)
                     for i, s in zip(indices, suggested, strict=True))
    review = Review(dataset="mnist 10 classes", class_names=tuple("0123456789"),
                    source_labels=tuple(range(10)), suspects=suspects, issues=len(suspects), n_train=len(y),
                    folds=5, rank_by="self_confidence", accuracy=0.98, fold_accuracies=(0.98,) * 5,
                    seconds=60.0, workers=2, config={}, load_average=1.0, key=target.key,
                    made_at="2026-12-07T00:00:00+00:00")
    save_review(review)
    return review


def captions(at):
    return " ".join(element.value for element in at.markdown)


def test_the_gallery_keeps_decisions_as_a_list_and_retrain_uses_it(use_studio, open_page):
    studio = use_studio(session.Studio(config=dataclasses.replace(preset("tutorial"), iterations=3)))
    target = label_review.review_target(studio.config)
    label_review.clear_edits(target)
    y = target.source.y_train
    five, other_five = np.flatnonzero(y == 5)[:2]
    eight, three = np.flatnonzero(y == 8)[0], np.flatnonzero(y == 3)[0]
    seeded_review(target, [five, eight, three, other_five], [3, 9, 5, 6])
    data_files = sorted(SHIPPED_MNIST.iterdir())
    files_before = {path: (path.stat().st_mtime_ns, path.stat().st_size) for path in data_files}

    at = open_page("pages/data.py")
    assert any(header.value == "Suspect labels" for header in at.header)
    shown = captions(at)
    assert f"image {five}: given **5**, suggested **3** (97%)" in shown and f"image {three}" in shown
    assert len(at.get("image")) == 4

    at.button(key=f"labels_exclude_{five}").click().run()
    at.button(key=f"labels_relabel_{eight}").click().run()  # the suggestion: an 8 that is a 9
    at.selectbox(key=f"labels_other_{three}").set_value(5).run()  # another label: a 3 that is a 5
    at.button(key=f"labels_exclude_{other_five}").click().run()
    at.button(key=f"labels_restore_{other_five}").click().run()  # changed one's mind
    assert not at.exception, [e.value for e in at.exception]
    edits = label_review.edits_of(target)
    assert edits.excluded == {int(five)} and edits.relabelled == {int(eight): 9, int(three): 5}
    assert "1 excluded, 2 relabelled" in captions(at) and ":red[Excluded]" in captions(at)

    plain = studio.load_data()
    at.button(key="labels_retrain").click().run()
    assert not at.exception, [e.value for e in at.exception]
    try:
        assert studio.config.label_edits == edits.edits_id()
        data = studio.trainer.data  # the network now trains on the edited 5 vs 8
        where = {int(index): position for position, index in enumerate(data.source_index)}
        assert five not in where and eight not in where  # left out; an 8 relabelled 9 leaves 5 vs 8
        assert data.y_train[where[three]] == 0  # a 3 relabelled 5: class 0 of 5 vs 8
        assert len(data.y_train) == len(plain.y_train) - 2 + 1
        assert any("Training from a fresh network on label edits" in s.value for s in at.success)
    finally:
        studio.release()
    assert {path: (path.stat().st_mtime_ns, path.stat().st_size) for path in data_files} == files_before

    at.button(key="labels_retrain_plain").click().run()
    try:
        assert studio.config.label_edits is None and len(studio.trainer.data.y_train) == len(plain.y_train)
    finally:
        studio.release()


def test_a_review_started_on_the_page_runs_on_the_local_cluster(use_studio, open_page, monkeypatch):
    monkeypatch.setattr(labels, "FOLD_ITERATIONS", 40)  # a quick fold model: the page's wiring is tested
    studio = use_studio(session.Studio(config=preset("tutorial")))
    at = open_page("pages/data.py")
    at.number_input(key="labels_subset").set_value(1000).run()
    at.number_input(key="labels_folds").set_value(2).run()
    at.button(key="labels_find").click().run()
    assert not at.exception and not at.warning, [w.value for w in at.warning]
    target = label_review.review_target(studio.config)
    job = label_review.review_job(target.key)
    assert job is not None and job.folds == 2
    started = time.monotonic()
    assert job.wait(DEADLINE), f"no review within {DEADLINE} s"
    assert job.error is None, job.error
    review = job.review
    assert review.folds == 2 and review.n_train == 1000 and review.workers == 2
    assert len(job.lines) == 2 and all("held-out images right" in line for line in job.lines)
    at.run()
    assert f"Last review ({review.made_at} UTC)" in " ".join(c.value for c in at.caption)
    if review.suspects:
        assert f"image {review.suspects[0].index}:" in captions(at)
    assert time.monotonic() - started < DEADLINE


def test_an_uploads_edits_are_kept_under_its_own_identity_and_trained_on():
    from studio import data_files

    rng = np.random.RandomState(5)
    x = rng.randint(0, 256, size=(120, 6, 6)).astype(np.uint8)
    y = np.arange(120) % 3
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    upload = data_files.save_upload([("three.npz", buffer.getvalue())], "three")
    studio = session.Studio()
    config = data_files.training_config(studio.config, upload, None)
    target = label_review.review_target(config)
    assert target.key.startswith("npz-") and target.labels == (0, 1, 2) and target.image_shape == (6, 6)
    assert label_review.review_target(config) is target  # the same files are not read again
    review = seeded_review(target, [0, 1], [2, 0])
    label_review.exclude(target, review, 0)
    label_review.relabel(target, review, 1, 0)
    edits = label_review.edits_of(target)
    assert edits.excluded == {0} and edits.relabelled == {1: 0}
    studio.propose(config)
    try:
        edits_id = label_review.train_with_edits(studio, target)
        data = studio.trainer.data
        assert studio.config.label_edits == edits_id and 0 not in data.source_index
        assert data.y_train[list(data.source_index).index(1)] == 0
        assert len(data.y_train) == target.n_train - 1
    finally:
        studio.release()
    with pytest.raises(InputError, match="not a suspect"):
        label_review.exclude(target, review, 5)
