"""Small runs share the pool of backprop.scheduler: many train at once and fairly, each pauses, steps,
stops at its budget or a divergence and keeps its pace like a run with a thread of its own, and
nothing is left behind. Step counts and deadlines only: no assertion on absolute speed."""

import threading
import time

import numpy as np
import pytest

from backprop import scheduler
from backprop.config import TrainConfig
from backprop.errors import InputError
from backprop.profiles import PLAYGROUND
from backprop.runs import RunStore
from backprop.threads import TrainingThread, active_small_runs, active_training_threads
from backprop.trainer import Trainer
from studio.session import Studio


def playground(**changes):
    """The Playground's default set-up: the circle, [2, 4, 2, 1] tanh, batches of 10, 500 points."""
    return PLAYGROUND.config(**changes)


def big(**changes):
    """A set-up over the small-run limit: [784, 16, 1] on 300 MNIST images, full batch."""
    return TrainConfig(**{"subset": 300, "layers": [16, 1], "iterations": 100_000, **changes}).validated()


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.sqlite")


def steps_recorded(store, run_id):
    """The iterations of the steps in the run store (its test evaluations left out)."""
    return [row["iteration"] for row in store.history(run_id) if row["cost"] is not None]


def wait_for(condition, seconds=60, what="the condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"{what} did not happen within {seconds} s")


@pytest.fixture(autouse=True)
def _nothing_left_behind():
    yield
    wait_for(lambda: active_small_runs() == 0 and active_training_threads() == 0, 30,
             "every run ending")


def test_the_rule_small_is_the_step_cost():
    config = playground()
    trainer = Trainer.from_config(config, config.load_data())
    assert trainer.network.sizes == [2, 4, 2, 1]
    # 25 parameters x 250 samples (its test set, evaluated every 25 steps; a batch is 10)
    assert scheduler.trainer_step_cost(trainer) == 25 * 250 and scheduler.is_small(trainer)
    largest = playground(features=("x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1", "sinx2"),
                         layers=[8] * 6 + [1], batch_size=30)
    assert scheduler.is_small(Trainer.from_config(largest, largest.load_data()))
    config = big()
    trainer = Trainer.from_config(config, config.load_data())
    assert scheduler.trainer_step_cost(trainer) == (784 * 16 + 16 + 17) * 300 > scheduler.SMALL_STEP_COST
    assert not scheduler.is_small(trainer)
    assert scheduler.step_cost([2, 4, 2, 1], 10, 10**6) == 25 * 8192  # an evaluation goes by blocks


def test_sixteen_small_runs_all_progress_and_share_fairly():
    config = playground()
    data = config.load_data()
    trainers = [Trainer.from_config(config, data) for _ in range(16)]
    threads = [TrainingThread(f"backprop-train-test{i}", lambda records: None, lambda reason: None)
               for i in range(16)]
    try:
        for trainer, thread in zip(trainers, threads, strict=True):
            thread.start(trainer, 10**7)
        assert all(thread.pooled and thread.running for thread in threads)
        assert active_small_runs() == 16 and active_training_threads() == 0
        wait_for(lambda: min(t.iteration for t in trainers) >= 20, what="every run taking 20 steps")
        # over a window in which the slowest run takes 300 steps (several seconds, many turns each)
        start = [t.iteration for t in trainers]
        wait_for(lambda: min(t.iteration - s for t, s in zip(trainers, start, strict=True)) >= 300,
                 120, "every run taking 300 more steps")
        steps = [t.iteration - s for t, s in zip(trainers, start, strict=True)]
        assert min(steps) >= max(steps) / 2, steps
        workers = [t for t in threading.enumerate() if t.name.startswith(scheduler.POOL_PREFIX + "")
                   and t.name != scheduler.POOL_PREFIX + "end"]
        assert 1 <= len(workers) <= scheduler.pool_workers()  # 16 runs, no more threads than cores
    finally:
        for thread in threads:
            thread.stop()
    assert not any(thread.running for thread in threads) and active_small_runs() == 0
    stopped_at = [t.iteration for t in trainers]
    trainers[0].step(1)  # nothing else steps them any more
    assert [t.iteration for t in trainers] == [stopped_at[0] + 1, *stopped_at[1:]]


def test_pause_resume_and_step_on_a_small_run(store):
    studio = Studio(playground(), store=store)
    studio.train()
    assert studio.run.pooled and studio.running
    wait_for(lambda: studio.trainer.iteration >= 30, what="30 steps")
    studio.pause()
    assert not studio.running and active_small_runs() == 0
    paused_at = studio.trainer.iteration
    assert store.get(studio.run_id)["status"] == "stopped"
    assert len(studio.view().iterations) == paused_at  # every step recorded through the Run
    studio.step(1)
    assert studio.trainer.iteration == paused_at + 1
    studio.train()  # the same network and run record, in the pool again
    assert store.get(studio.run_id)["status"] == "running" and studio.run.pooled
    wait_for(lambda: studio.trainer.iteration > paused_at + 10, what="training on")
    studio.step(5)  # pauses the pool's job first, then exactly 5 steps here
    assert not studio.running
    at = studio.trainer.iteration
    studio.step(1)
    assert studio.trainer.iteration == at + 1
    studio.release()
    assert store.get(studio.run_id)["status"] == "stopped"
    assert steps_recorded(store, studio.run_id) == list(range(at + 1))


def test_a_small_run_stops_at_its_budget(store):
    studio = Studio(playground(iterations=200), store=store)
    studio.train()
    wait_for(lambda: not studio.running, what="the budget's end")
    assert studio.trainer.iteration == 200 and studio.stop_reason == "budget"
    assert store.get(studio.run_id)["status"] == "finished"
    assert steps_recorded(store, studio.run_id) == list(range(200))
    assert studio.message[0] == "success"
    with pytest.raises(InputError):
        studio.train()


def test_a_small_run_that_diverges_stops_and_keeps_good_parameters(store):
    studio = Studio(playground(learning_rate=1e300), store=store)
    studio.train()
    assert studio.run.pooled
    wait_for(lambda: not studio.running, what="the divergence's stop")
    assert studio.stop_reason == "diverged"
    kind, text = studio.message
    assert kind == "error" and "layer" in text and "learning rate" in text
    assert all(np.isfinite(W).all() and np.isfinite(b).all() for W, b in studio.trainer.network.params)
    assert store.get(studio.run_id)["status"] == "diverged"


def test_a_small_runs_pace_applies_at_once_and_pause_does_not_wait_for_it(store):
    studio = Studio(playground(), store=store)
    studio.set_speed(4)  # slow motion: 4 steps a second
    studio.train()
    wait_for(lambda: studio.trainer.iteration >= 2, what="two slow steps")
    started, first = time.monotonic(), studio.trainer.iteration
    wait_for(lambda: studio.trainer.iteration >= first + 4, what="four more slow steps")
    assert time.monotonic() - started >= 0.5  # 4 steps at 4 steps/s: never faster than the pace
    studio.set_speed(None)  # full speed from the next step (at 4 steps/s 400 steps would take 100 s)
    at = studio.trainer.iteration
    wait_for(lambda: studio.trainer.iteration >= at + 400, 60, "400 steps at full speed")
    studio.set_speed(0.2)  # one step every 5 s: Pause must not wait for it
    before = time.monotonic()
    studio.pause()
    assert time.monotonic() - before < 2.5 and not studio.running
    studio.release()


def test_a_failing_step_ends_a_small_run_with_its_error(store):
    config = playground()
    trainer = Trainer.from_config(config, config.load_data())
    reasons = []

    def broken(records):
        raise RuntimeError("the disk is on fire")
    thread = TrainingThread("backprop-train-broken", broken, reasons.append)
    thread.start(trainer, 10**6)
    wait_for(lambda: not thread.running, what="the error's stop")
    assert reasons == ["error: the disk is on fire"] and active_small_runs() == 0


def test_starts_and_stops_of_small_runs_are_logged_with_the_count(store, capsys):
    a, b = Studio(playground(seed=1), store=store), Studio(playground(seed=2), store=store)
    a.train()
    b.train()
    a.pause()
    b.release()
    lines = [line for line in capsys.readouterr().err.splitlines() if "training threads running" in line]
    assert lines == [f"backprop-studio: training threads running: {n}" for n in (1, 2, 1, 0)]


def test_small_runs_have_a_cap_of_their_own(store, monkeypatch):
    monkeypatch.setenv("BACKPROP_MAX_SMALL_RUNS", "2")
    studios = [Studio(playground(seed=seed), store=store) for seed in range(1, 4)]
    try:
        studios[0].train()
        studios[1].train()
        with pytest.raises(InputError) as error:
            studios[2].train()
        assert "BACKPROP_MAX_SMALL_RUNS" in error.value.message and not studios[2].running
        assert len(store.list_runs()) == 2  # the refused start left no run behind
        studios[0].pause()
        studios[2].train()  # a slot is free again
    finally:
        for studio in studios:
            studio.release()


def test_a_class_trains_small_networks_past_the_cap_while_a_fifth_big_one_is_refused(store, monkeypatch):
    monkeypatch.delenv("BACKPROP_MAX_TRAINING_THREADS", raising=False)
    bigs = [Studio(big(seed=seed), store=store) for seed in range(1, 6)]
    class_ = [Studio(playground(seed=seed), store=store) for seed in range(1, 17)]
    try:
        for studio in bigs[:4]:  # slow motion: each holds its thread and slot, and leaves the cores free
            studio.set_speed(5)
            studio.train()
        for studio in class_:  # the 5th..16th trainings beyond the cap of 4: none refused
            studio.train()
        with pytest.raises(InputError) as error:
            bigs[4].train()
        assert error.value.field == "training" and "BACKPROP_MAX_TRAINING_THREADS" in error.value.message
        assert active_training_threads() == 4 and active_small_runs() == 16
        assert not any(studio.run.pooled for studio in bigs[:4])
        assert all(studio.run.pooled and studio.running for studio in class_)
        wait_for(lambda: all(studio.trainer.iteration >= 10 for studio in class_)
                 and all(studio.trainer.iteration >= 2 for studio in bigs[:4]), what="every run training")
    finally:  # the class leaves at once: every tab's session released in a thread of its own
        leaving = [threading.Thread(target=studio.release) for studio in bigs + class_]
        for thread in leaving:
            thread.start()
        for thread in leaving:
            thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in leaving)
    assert active_training_threads() == 0 and active_small_runs() == 0


def test_pool_workers_end_when_idle_and_start_again():
    pool = scheduler.Pool(workers=2, idle_seconds=0.2)
    config = playground()
    trainer = Trainer.from_config(config, config.load_data())
    ended = []
    job = scheduler.Job(trainer, 50, lambda records: None, ended.append, lambda: None, [])
    pool.add(job)
    assert job.ended.wait(30) and ended == ["budget"] and trainer.iteration == 50
    wait_for(lambda: pool.workers() == 0, 30, "the idle worker ending")
    job = scheduler.Job(trainer, 80, lambda records: None, ended.append, lambda: None, [])
    pool.add(job)  # a worker starts again
    assert job.ended.wait(30) and ended == ["budget", "budget"] and trainer.iteration == 80
    wait_for(lambda: pool.workers() == 0 and pool.jobs() == 0, 30, "the idle worker ending")


def test_the_workers_wait_while_the_server_draws_and_go_on_after():
    """`foreground()` (a page drawing its live views) holds the workers between turns, for at most
    foreground_wait each time; here a long one, so that no turn can slip in while it is held."""
    pool = scheduler.Pool(workers=2, idle_seconds=0.2, foreground_wait=60.0)
    config = playground()
    trainer = Trainer.from_config(config, config.load_data())
    ended = []
    job = scheduler.Job(trainer, 10**9, lambda records: None, ended.append, lambda: None, [])
    with pool.foreground():
        pool.add(job)
        time.sleep(0.3)  # a worker started and waits: no turn, no step
        assert trainer.iteration == 0 and pool.workers() == 1
    wait_for(lambda: trainer.iteration > 0, 30, "a step once the drawing ended")
    pool.stop(job)
    assert ended == ["paused"]
    wait_for(lambda: pool.workers() == 0, 30, "the idle worker ending")


def test_a_drawing_holds_the_workers_for_at_most_foreground_wait():
    pool = scheduler.Pool(workers=1, idle_seconds=0.2, foreground_wait=0.01)
    config = playground()
    trainer = Trainer.from_config(config, config.load_data())
    job = scheduler.Job(trainer, 10**9, lambda records: None, lambda reason: None, lambda: None, [])
    with pool.foreground():  # a drawing that never ends: training goes on, between waits
        pool.add(job)
        wait_for(lambda: trainer.iteration > 0, 30, "a step while the drawing goes on")
    pool.stop(job)
    wait_for(lambda: pool.workers() == 0, 30, "the idle worker ending")
