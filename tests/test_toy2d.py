"""The 2D data sets: shapes, classes, noise, seeds, features, and their place among the tasks."""

import numpy as np
import pytest

from backprop.data import DATASETS, load_task
from backprop.data.toy2d import CLASSIFICATION, FEATURES, PLANE_RADIUS, TOY_DATASETS, feature_map, make_toy
from backprop.errors import InputError


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_every_set_has_its_shape_split_and_targets(name):
    toy = make_toy(name, points=300, train_share=70, seed=3)
    assert toy.plane_train.shape == (210, 2) and toy.plane_test.shape == (90, 2)
    assert toy.target_train.shape == (210,) and toy.target_test.shape == (90,)
    everything = np.concatenate([toy.target_train, toy.target_test])
    if name in CLASSIFICATION:
        assert everything.dtype == np.int64
        counts = np.bincount(everything, minlength=2)
        assert counts.tolist() in ([150, 150],) or name == "xor" and min(counts) > 100
    else:
        assert everything.dtype == np.float64 and np.abs(everything).max() <= 1.3
        assert everything.std() > 0.1
    assert np.abs(np.concatenate([toy.plane_train, toy.plane_test])).max() <= PLANE_RADIUS + 0.5


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_the_same_seed_gives_the_same_points_and_another_seed_others(name):
    a, b, c = (make_toy(name, points=100, noise=20, seed=s) for s in (5, 5, 6))
    assert np.array_equal(a.plane_train, b.plane_train) and np.array_equal(a.target_test, b.target_test)
    assert not np.array_equal(a.plane_train, c.plane_train)


def test_without_noise_the_labels_follow_the_problem_exactly():
    circle = make_toy("circle", points=400, noise=0)
    radius = np.hypot(*circle.plane_train.T)
    assert np.array_equal(circle.target_train, (radius < 2.5).astype(int))
    xor = make_toy("xor", points=400, noise=0)
    assert np.array_equal(xor.target_train, (xor.plane_train.prod(axis=1) >= 0).astype(int))
    plane = make_toy("plane", points=50, noise=0)
    assert np.allclose(plane.target_train, plane.plane_train.sum(axis=1) / 10)


@pytest.mark.parametrize("name", ["circle", "xor", "plane", "multi-gauss"])
def test_noise_blurs_labels_decided_by_a_jittered_position(name):
    clean = make_toy(name, points=1000, noise=0, seed=2)
    noisy = make_toy(name, points=1000, noise=50, seed=2)
    reference = {"circle": lambda p: (np.hypot(*p.T) < 2.5).astype(int),
                 "xor": lambda p: (p.prod(axis=1) >= 0).astype(int)}
    if name in reference:
        truth = reference[name]
        assert np.mean(truth(clean.plane_train) != clean.target_train) == 0
        assert np.mean(truth(noisy.plane_train) != noisy.target_train) > 0.1
    else:
        assert np.isfinite(noisy.target_train).all()
        assert not np.allclose(noisy.target_train, clean.target_train)


def test_noise_widens_the_gaussian_clusters():
    def spread(noise):
        toy = make_toy("gauss", points=1000, noise=noise, seed=4)
        ones = toy.plane_train[toy.target_train == 1]
        return np.linalg.norm(ones - ones.mean(axis=0), axis=1).mean()

    assert spread(50) > spread(0) * 2


@pytest.mark.parametrize("name", ["spiral", "moons"])
def test_noise_moves_the_points_off_their_curves(name):
    clean = make_toy(name, points=1000, noise=0, seed=4)
    noisy = make_toy(name, points=1000, noise=50, seed=4)
    shift = np.linalg.norm(noisy.plane_train - clean.plane_train, axis=1)
    assert 0.2 < shift.mean() < 1.5
    assert np.array_equal(noisy.target_train, clean.target_train)  # the class is the curve's


def test_features_are_the_chosen_functions_in_the_tables_order():
    plane = np.array([[1.0, 2.0], [-0.5, 3.0]])
    x = feature_map(plane, "sinx2,x1,x1x2,x2sq")
    expected = np.stack([plane[:, 0], plane[:, 1] ** 2, plane[:, 0] * plane[:, 1], np.sin(plane[:, 1])], 1)
    assert np.allclose(x, expected)
    assert feature_map(plane, tuple(FEATURES)).shape == (2, 7)


@pytest.mark.parametrize("kwargs, field", [
    ({"points": 5}, "points"), ({"points": 10**6}, "points"), ({"points": 2.5}, "points"),
    ({"noise": 81}, "noise"), ({"noise": -1}, "noise"), ({"noise": "lots"}, "noise"),
    ({"train_share": 95}, "train_share"), ({"train_share": 5}, "train_share"),
    ({"features": ()}, "features"), ({"features": "x1,x3"}, "features"), ({"features": 7}, "features"),
    ({"seed": -1}, "seed"),
])
def test_bad_settings_name_their_field(kwargs, field):
    with pytest.raises(InputError) as caught:
        make_toy("spiral", **kwargs)
    assert caught.value.field == field


def test_load_task_knows_the_2d_sets_like_any_other():
    assert set(TOY_DATASETS) <= set(DATASETS)
    task = load_task("spiral", digits=(0, 1), points=200, noise=10, train_share=80,
                     features=("x1", "x2", "sinx1"), seed=7)
    assert task.x_train.shape == (160, 3) and task.x_test.shape == (40, 3)
    assert task.n_classes == 2 and task.features == ("x1", "x2", "sinx1") and not task.regression
    assert task.x_train.flags.c_contiguous and task.x_train.dtype == np.float64
    assert np.allclose(task.x_train[:, :2], task.plane_train)
    swapped = load_task("spiral", digits=(1, 0), points=200, noise=10, train_share=80, seed=7)
    assert np.array_equal(swapped.y_train, 1 - task.y_train)
    both = load_task("spiral", digits=None, points=200, seed=7, dtype="float32")
    assert both.class_names == ["0", "1"] and both.x_train.dtype == np.float32


def test_regression_tasks_have_one_numeric_target():
    task = load_task("multi-gauss", digits=None, points=100, seed=1)
    assert task.regression and task.n_classes == 1 and task.y_train.dtype == np.float64
    with pytest.raises(InputError) as caught:
        load_task("plane", digits=(0, 1))
    assert caught.value.field == "digits"


def test_2d_sets_refuse_what_does_not_apply_to_them():
    with pytest.raises(InputError) as caught:
        load_task("spiral", digits=(5, 8))
    assert caught.value.field == "digits" and "0, 1" in caught.value.message
    with pytest.raises(InputError) as caught:
        load_task("circle", digits=(0, 1), subset=50)
    assert caught.value.field == "subset"



def test_the_split_and_the_noise_are_tensorflow_playgrounds():
    """TF splits floor(n * share / 100) points off for training, and takes a noise of up to 80 from a
    link (issue 19)."""
    toy = make_toy("circle", points=55, train_share=30, seed=1)
    assert (len(toy.target_train), len(toy.target_test)) == (16, 39)  # floor(16.5)
    assert len(make_toy("plane", points=1200, train_share=50).target_train) == 600
    noisy = make_toy("xor", points=400, noise=80, seed=2)
    assert np.mean(noisy.target_train == (noisy.plane_train[:, 0] * noisy.plane_train[:, 1] >= 0)) < 0.9
