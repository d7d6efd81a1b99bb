"""The per-session Studio and its training thread, without a browser."""

import threading
import time

import numpy as np
import pytest

from backprop.checkpoint import load_checkpoint, save_checkpoint
from backprop.config import TrainConfig
from backprop.errors import InputError
from backprop.runs import RunStore
from studio.session import THREAD_PREFIX, Studio, active_training_threads


def small(**changes):
    """A fast set-up: 300 training images of 5 vs 8."""
    values = dict(subset=300, layers=[16, 1], iterations=1000, eval_every=5)
    values.update(changes)
    return TrainConfig(**values).validated()


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.sqlite")


def wait_for(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def training_threads():
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def test_step_builds_on_first_use_and_counts_exactly(store):
    studio = Studio(small(), store=store)
    assert studio.trainer is None
    records = studio.step(1)
    assert studio.trainer.iteration == 1 and len(records) == 1
    studio.step(10)
    view = studio.view()
    assert view.iteration == 11 and len(view.iterations) == 11
    assert not view.running


def test_train_runs_in_a_named_thread_and_pause_ends_it(store):
    studio = Studio(small(), store=store)
    studio.train()
    assert wait_for(lambda: studio.trainer.iteration >= 3)
    assert any(t.name == THREAD_PREFIX + studio.session_id for t in training_threads())
    assert active_training_threads() >= 1
    studio.pause()
    stopped_at = studio.trainer.iteration
    assert not studio.running and not training_threads()
    time.sleep(0.2)
    assert studio.trainer.iteration == stopped_at
    assert store.get(studio.run_id)["status"] == "stopped"
    studio.train()  # resumes the same network and the same run record
    assert store.get(studio.run_id)["status"] == "running"
    assert wait_for(lambda: studio.trainer.iteration > stopped_at)
    studio.release()
    assert not training_threads() and active_training_threads() == 0


def test_thread_starts_and_stops_are_logged_with_the_count(store, capsys):
    studio = Studio(small(), store=store)
    studio.train()
    studio.pause()
    lines = [line for line in capsys.readouterr().err.splitlines() if "training threads running" in line]
    assert lines == ["backprop-studio: training threads running: 1",
                     "backprop-studio: training threads running: 0"]


def test_a_closed_run_keeps_its_trained_network_as_a_checkpoint(store):
    studio = Studio(small(), store=store)
    studio.train()
    assert wait_for(lambda: studio.trainer.iteration >= 3)
    studio.pause()  # paused: the run points at a checkpoint of the weights so far
    first = studio.run_id
    path = store.get(first)["checkpoint_path"]
    assert path.endswith(f"checkpoints/run-{first}.npz")
    saved = load_checkpoint(path)
    assert saved.config == studio.config and saved.history.last()["iteration"] == studio.trainer.iteration - 1
    for (W, _), (W_saved, _) in zip(studio.trainer.network.params, saved.network.params, strict=True):
        np.testing.assert_array_equal(W, W_saved)
    studio.step(2)
    trained = studio.trainer.iteration
    studio.reset()  # closes the run: its checkpoint now holds the two Steps too
    assert store.get(first)["status"] == "stopped" and studio.trainer.iteration == 0
    assert load_checkpoint(path).history.last()["iteration"] == trained - 1


def test_budget_stops_the_thread_and_finishes_the_run(store):
    studio = Studio(small(iterations=7), store=store)
    studio.train()
    assert wait_for(lambda: not studio.running)
    assert studio.trainer.iteration == 7 and studio.stop_reason == "budget"
    assert store.get(studio.run_id)["status"] == "finished"
    assert [row["iteration"] for row in store.history(studio.run_id)] == list(range(7))
    with pytest.raises(InputError) as error:
        studio.train()
    assert error.value.field == "iterations"


def test_divergence_pauses_names_the_layer_and_keeps_good_parameters(store):
    studio = Studio(small(dtype="float32", learning_rate=1e38), store=store)
    studio.train()
    assert wait_for(lambda: not studio.running)
    assert studio.stop_reason == "diverged"
    kind, text = studio.message
    assert kind == "error" and "layer" in text and "learning rate" in text
    assert all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in studio.trainer.network.params)
    assert store.get(studio.run_id)["status"] == "diverged"
    with pytest.raises(InputError):
        studio.step(1)


def test_server_wide_cap(store, monkeypatch):
    monkeypatch.setenv("BACKPROP_MAX_TRAINING_THREADS", "1")
    first, second = Studio(small(), store=store), Studio(small(), store=store)
    first.train()
    try:
        with pytest.raises(InputError) as error:
            second.train()
        assert error.value.field == "training" and "BACKPROP_MAX_TRAINING_THREADS" in error.value.message
        assert not second.running
    finally:
        first.release()
    second.train()  # a slot is free again
    second.release()


def test_two_sessions_train_different_setups_independently(store):
    a = Studio(small(layers=[8, 1], learning_rate=0.5), store=store)
    b = Studio(small(layers=[32, 16, 1], activation="tanh"), store=store)
    a.train()
    b.train()
    assert wait_for(lambda: a.trainer.iteration >= 5 and b.trainer.iteration >= 5)
    assert len(training_threads()) == 2
    a.release()
    assert b.running
    b.release()
    assert [W.shape for W, _ in a.trainer.network.params] == [(8, 784), (1, 8)]
    assert [W.shape for W, _ in b.trainer.network.params] == [(32, 784), (16, 32), (1, 16)]
    assert a.run_id != b.run_id


def test_live_settings_apply_now_and_structure_waits_for_reset(store):
    studio = Studio(small(), store=store)
    studio.step(2)
    waiting = studio.propose(small(learning_rate=0.5, optimizer="adam"))
    assert waiting == []
    assert studio.trainer.optimizer.name == "adam" and studio.trainer.optimizer.learning_rate == 0.5
    assert {m["setting"] for m in studio.trainer.history.markers} == {"optimizer"}
    waiting = studio.propose(small(layers=[4, 1], learning_rate=0.5, optimizer="adam"))
    assert waiting == ["layers"] and studio.pending is not None
    assert studio.trainer.network.sizes == [784, 16, 1]  # the current run is untouched
    studio.reset()
    assert studio.trainer.network.sizes == [784, 4, 1] and studio.trainer.iteration == 0
    assert studio.pending is None


def test_restore_from_a_checkpoint_continues_counting(store, tmp_path):
    studio = Studio(small(), store=store)
    studio.step(4)
    path = save_checkpoint(tmp_path / "net.npz", studio.trainer.network, studio.config,
                           studio.trainer.history)
    checkpoint = load_checkpoint(path)
    other = Studio(small(), store=store)
    other.restore(checkpoint.config, checkpoint.network.params, checkpoint.history)
    assert other.trainer.iteration == 4
    for (W1, _), (W2, _) in zip(studio.trainer.network.params, other.trainer.network.params, strict=True):
        np.testing.assert_array_equal(W1, W2)
    other.step(1)
    assert other.view().iterations.tolist() == [0, 1, 2, 3, 4]


def test_gradients_now_and_at_init_have_the_weight_shapes(store):
    studio = Studio(small(), store=store)
    studio.step(3)
    now, initial = studio.gradients(), studio.initial_gradients()
    assert [dW.shape for dW, _ in now] == [W.shape for W, _ in studio.trainer.network.params]
    assert not np.allclose(now[0][0], initial[0][0])


# -- a dropped websocket: the Studio waits, paused, for its session to reconnect ------------------
def parked_studio(store, monkeypatch, seconds="30", **changes):
    from studio import session

    monkeypatch.setenv(session.RECONNECT_VARIABLE, seconds)
    parking = session.Parking()
    studio = Studio(small(**changes), store=store, reconnect_key=("session-1", "train"))
    studio.train()
    assert wait_for(lambda: studio.trainer.iteration >= 5)
    return parking, studio


def test_a_dropped_session_pauses_and_a_reconnect_takes_its_run_back(store, monkeypatch):
    parking, studio = parked_studio(store, monkeypatch)
    parking.park(studio.reconnect_key, studio)
    assert wait_for(lambda: not training_threads()), "the parked run's thread still trains"
    paused_at = studio.trainer.iteration
    assert store.get(studio.run_id)["status"] == "stopped" and len(parking) == 1  # paused, in the store
    assert parking.reclaim(("session-2", "train")) is None  # another session finds nothing
    assert parking.reclaim(("session-1", "playground")) is None  # nor another Studio of the same one

    back = parking.reclaim(studio.reconnect_key)
    assert back is studio and len(parking) == 0
    assert studio.running and "connection dropped" in studio.message[1]
    assert wait_for(lambda: studio.trainer.iteration > paused_at + 3)
    history = studio.view().iterations
    assert list(history) == list(range(len(history)))  # one run, counted on without a gap
    assert store.get(studio.run_id)["status"] == "running"
    studio.release()


def test_a_paused_session_comes_back_paused(store, monkeypatch):
    parking, studio = parked_studio(store, monkeypatch)
    studio.pause()
    parking.park(studio.reconnect_key, studio)
    assert parking.reclaim(studio.reconnect_key) is studio
    assert not studio.running and studio.message is None
    studio.release()


def test_no_reconnect_in_time_releases_the_studio(store, monkeypatch, capsys):
    parking, studio = parked_studio(store, monkeypatch, seconds="0.3")
    parking.park(studio.reconnect_key, studio)
    assert wait_for(lambda: len(parking) == 0, 10)
    assert parking.reclaim(studio.reconnect_key) is None
    log = capsys.readouterr().err
    assert "its Studio waits 0.3 s for a reconnect" in log and "no reconnect; its Studio is released" in log


def test_reconnect_seconds_zero_releases_at_once(store, monkeypatch):
    parking, studio = parked_studio(store, monkeypatch, seconds="0")
    parking.park(studio.reconnect_key, studio)
    assert len(parking) == 0
    assert wait_for(lambda: store.get(studio.run_id)["status"] == "stopped", 10)


@pytest.mark.parametrize("text, seconds", [("", 60.0), ("5", 5.0), ("-3", 0.0), ("1e9", 120.0),
                                           ("soon", 60.0), ("nan", 60.0)])
def test_reconnect_seconds_reads_the_variable_within_bounds(monkeypatch, text, seconds):
    from studio import session

    monkeypatch.setenv(session.RECONNECT_VARIABLE, text)
    assert session.reconnect_seconds() == seconds


def test_parked_studios_keep_at_most_one_memory_budget(store, monkeypatch, capsys):
    from studio import session

    monkeypatch.setenv(session.RECONNECT_VARIABLE, "30")
    parking, studios = session.Parking(), []
    for number in range(3):
        studio = Studio(small(seed=number + 1), store=store, reconnect_key=(f"session-{number}", "train"))
        studio.step(1)
        studios.append(studio)
    one = session.held_bytes(studios[0])
    assert one >= studios[0].data.x_train.nbytes > 0
    monkeypatch.setenv("BACKPROP_MEMORY_BUDGET", str(int(2.5 * one)))  # room for two of the three
    for studio in studios:
        parking.park(studio.reconnect_key, studio)
    assert wait_for(lambda: len(parking) == 2), "the oldest was not released past the budget"
    log = capsys.readouterr().err
    assert f"session {studios[0].session_id}: parked Studios are over the memory budget" in log
    assert parking.reclaim(studios[0].reconnect_key) is None
    assert parking.reclaim(studios[2].reconnect_key) is studios[2]
    parking.release_all()
    assert len(parking) == 0 and parking.reclaim(studios[1].reconnect_key) is None


def test_a_second_studio_parked_under_the_same_key_releases_the_first(store, monkeypatch):
    parking, first = parked_studio(store, monkeypatch)
    first.pause()
    second = Studio(small(seed=2), store=store, reconnect_key=first.reconnect_key)
    second.step(1)
    released = []
    first.release = lambda: released.append(first)  # what the parking calls, seen
    parking.park(first.reconnect_key, first)
    parking.park(second.reconnect_key, second)
    assert len(parking) == 1 and parking.reclaim(first.reconnect_key) is second
    assert wait_for(lambda: released == [first], 10), "the first was left paused and never released"
    Studio.release(first)
    second.release()
