"""Training one step at a time, so that a person (or a thread) can watch and steer it.

A Trainer owns a network, an optimizer, the data and a History. `step(k)` advances k steps and
returns a small record per step. Every public method takes the trainer's lock, so a
background thread can train while another thread changes the learning rate or reads a
snapshot. Parameter arrays are replaced on each step, never changed in place, so a snapshot's
arrays stay valid after the lock is released. Readers that must not wait long (a page drawing
the run) take the lock through `reading()`: a training loop lets them in between two steps.
An optional learning-rate schedule ("cosine" over `schedule_iterations` steps) scales each step's
update; the optimizer's learning_rate setting stays the base rate that a person sets.
With L1 and plain gradient descent, a weight that the penalty's part of a step takes across zero
stops at zero (TensorFlow Playground's rule, `l1_stop_at_zero`).
"""

import contextlib
import math
import threading
import time

import numpy as np

from .errors import InputError
from .health import UnitHealthCounter
from .history import LAYER_STATS, History
from .network import Network
from .optimizers import make_optimizer
from .settings import SETTINGS

PENALTIES = ("l2", "l1")  # weight penalties: settings that apply at the next step, as the cost's terms


class Trainer:
    # Called as epoch_observer(trainer) after each step that ends a pass over the training set (a
    # full-batch step, or the last mini-batch of a shuffled pass), under the lock, in the thread
    # that steps: the Playground's per-epoch training and test losses (studio/playground.py).
    epoch_observer = None

    def __init__(self, network, optimizer, data, batch_size=None, l2=0.0, l1=0.0, eval_every=100,
                 shuffle_seed=0, history_capacity=100_000, lr_schedule="constant",
                 schedule_iterations=None):
        _check_schedule(lr_schedule, schedule_iterations)
        self.lr_schedule = lr_schedule
        self.schedule_iterations = schedule_iterations
        self.network = network
        self.optimizer = optimizer
        self.data = data
        self.x_train = network.check_inputs(data.x_train)
        self.y_train = network.check_labels(data.y_train, self.x_train.shape[0])
        self.x_test = network.check_inputs(data.x_test) if len(data.x_test) else None
        self.y_test = network.check_labels(data.y_test, len(data.x_test)) if len(data.x_test) else None
        n = self.x_train.shape[0]
        self.batch_size = None if batch_size is None or batch_size >= n else int(batch_size)
        self.l2 = float(l2)
        self.l1 = float(l1)
        self.eval_every = int(eval_every)
        self.iteration = 0  # the next step's number; steps count from 0 like the tutorial's loop
        self.samples_seen = 0
        self.history = History(network.n_layers, history_capacity)
        self._unit_health = UnitHealthCounter(network.activation)  # fed by the step's forward pass
        self.diverged = None  # dict(iteration, layer, reason) once a step produced NaN/Inf
        self.seconds = 0.0  # time spent inside step()
        self._rng = np.random.RandomState(shuffle_seed)
        self._order = None
        self._cursor = 0
        self.lock = threading.RLock()
        self._readers_waiting = 0
        self._readers_lock = threading.Lock()

    # How long a step waits at most for readers that asked for the lock (see reading()).
    READER_WAIT_SECONDS = 0.2

    @contextlib.contextmanager
    def reading(self):
        """Hold the lock to read, with priority over the next step.

        A loop of step(1) releases the lock and takes it again at once; on a busy machine a
        thread that only waits for it can miss it step after step (pages measured waiting
        0.2-0.9 s for one snapshot). The next step first lets waiting readers in."""
        with self._readers_lock:
            self._readers_waiting += 1
        try:
            self.lock.acquire()
        finally:
            with self._readers_lock:
                self._readers_waiting -= 1
        try:
            yield self
        finally:
            self.lock.release()

    def _let_readers_in(self):
        deadline = time.perf_counter() + self.READER_WAIT_SECONDS
        while self._readers_waiting and time.perf_counter() < deadline:
            time.sleep(0.0005)

    @classmethod
    def from_config(cls, config, data, **kwargs):
        """Network, optimizer and trainer for a validated TrainConfig and its Dataset."""
        wanted = config.fit_output(data.n_classes).layers[-1]
        if config.layers[-1] != wanted:
            raise InputError("layers", f"the task has {data.n_classes} classes but the output layer "
                                       f"has {config.layers[-1]} units; end the layers with {wanted}")
        config.check_memory(data.n_features, len(data.y_train))  # before any parameter exists
        sizes = [data.n_features] + list(config.layers)
        net = Network(sizes, activation=config.activation, output=config.output, init=config.init,
                      seed=config.seed, dtype=config.dtype)
        optimizer = make_optimizer(config.optimizer, **config.optimizer_values())
        return cls(net, optimizer, data, batch_size=config.batch_size, l2=config.l2, l1=config.l1,
                   eval_every=config.eval_every, shuffle_seed=config.seed,
                   lr_schedule=config.lr_schedule, schedule_iterations=config.iterations, **kwargs)

    # -- steering ------------------------------------------------------------------------
    def change_setting(self, name, value):
        """Change an optimizer setting (or a penalty) before the next step; marks the history."""
        with self.lock:
            if name in PENALTIES:
                value = SETTINGS[name].parse(value)
                old = getattr(self, name)
                setattr(self, name, value)
            else:
                old = self.optimizer.values().get(name)
                value = self.optimizer.set(name, value)
            if old != value:
                self.history.add_marker(self.iteration, name, old, value)

    def penalties(self):
        """The weight penalties as keyword arguments of Network.loss_and_gradients."""
        return {name: getattr(self, name) for name in PENALTIES}

    def apply_live(self, config):
        """Take a set-up's settings that apply at the next step (settings.LIVE): the optimizer
        and its settings, the penalty, the schedule and the test interval."""
        with self.lock:
            if config.optimizer != self.optimizer.name:
                self.set_optimizer(config.optimizer, **config.optimizer_values())
            else:
                for name, value in config.optimizer_values().items():
                    self.change_setting(name, value)
            for name in PENALTIES:
                self.change_setting(name, getattr(config, name))
            self.eval_every = config.eval_every
            self.set_schedule(config.lr_schedule, config.iterations)  # a cosine decays over the budget

    def set_optimizer(self, name, **optimizer_values):
        """Switch optimizers before the next step. The new one starts with no state (its
        velocity or moments from zero): another optimizer's state means something else."""
        optimizer = make_optimizer(name, **optimizer_values)
        with self.lock:
            old, self.optimizer = self.optimizer.name, optimizer
            if old != name:
                self.history.add_marker(self.iteration, "optimizer", old, name)

    def set_schedule(self, lr_schedule, schedule_iterations):
        """Change the learning-rate schedule (and the iterations a cosine decays over)."""
        _check_schedule(lr_schedule, schedule_iterations)
        with self.lock:
            if lr_schedule != self.lr_schedule:
                self.history.add_marker(self.iteration, "lr_schedule", self.lr_schedule, lr_schedule)
            self.lr_schedule, self.schedule_iterations = lr_schedule, schedule_iterations

    # -- training ------------------------------------------------------------------------
    @property
    def epoch(self):
        return self.samples_seen / self.x_train.shape[0]

    @property
    def steps_to_epoch_end(self):
        """Steps until the current pass over the training set ends: ceil(n / batch) at its start."""
        n = self.x_train.shape[0]
        if self.batch_size is None:
            return 1
        cursor = 0 if self._order is None or self._cursor >= n else self._cursor
        return -(-(n - cursor) // self.batch_size)

    def _next_batch(self):
        if self.batch_size is None:
            return self.x_train, self.y_train
        n = self.x_train.shape[0]
        if self._order is None or self._cursor >= n:
            self._order = self._rng.permutation(n)
            self._cursor = 0
        index = self._order[self._cursor:self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return self.x_train[index], self.y_train[index]

    def step(self, k=1):
        """Advance up to k steps; returns one record per step taken (fewer if it diverged)."""
        records = []
        for _ in range(int(k)):
            self._let_readers_in()
            with self.lock:
                if self.diverged is not None:
                    break
                started = time.perf_counter()
                record = self._one_step()
                self.seconds += time.perf_counter() - started
            records.append(record)
        return records

    def lr_factor(self, iteration=None):
        """What the schedule multiplies the learning rate by at a step (1 when constant)."""
        if self.lr_schedule == "constant":
            return 1.0
        t = min(self.iteration if iteration is None else iteration, self.schedule_iterations)
        return 0.5 * (1.0 + math.cos(math.pi * t / self.schedule_iterations))

    def _one_step(self):
        net = self.network
        X, Y = self._next_batch()
        net.activation_observer = self._unit_health.start(
            X.shape[0], histogram=self.history.histograms.wants(self.iteration, X.shape[0]))
        with np.errstate(all="ignore"):
            cost, grads = net.loss_and_gradients(X, Y, **self.penalties())
        iteration = self.iteration
        net.activation_observer = None
        # Squared norms serve twice: the NaN/Inf check (a sum is finite only if every term is)
        # and the per-layer statistics.
        grad_sq = np.array([(np.vdot(dW, dW), np.vdot(db, db)) for dW, db in grads], dtype=np.float64)
        bad = self._first_bad_row(grad_sq)
        if bad is None and not np.isfinite(cost):
            bad = net.n_layers
        if bad is None:
            with np.errstate(all="ignore"):
                updates = self.optimizer.updates(grads)
                factor = self.lr_factor(iteration)
                if factor != 1.0:
                    for uW, ub in updates:
                        uW *= factor
                        ub *= factor
                new_params = [(W - uW, b - ub) for (W, b), (uW, ub) in zip(net.params, updates, strict=True)]
                if self.l1 and self.optimizer.name == "sgd":
                    penalty_step = self.l1 * self.optimizer.learning_rate * factor
                    new_params = [(l1_stop_at_zero(W, W_new, penalty_step), b_new)
                                  for (W, _), (W_new, b_new) in zip(net.params, new_params, strict=True)]
                param_sq = np.array([(np.vdot(W, W), np.vdot(b, b)) for W, b in new_params],
                                    dtype=np.float64)
            bad = self._first_bad_row(param_sq)
        if bad is not None:
            self.diverged = {"iteration": iteration, "layer": bad,
                             "reason": f"cost or gradient became NaN/Inf at step {iteration} "
                                       f"(first in layer {bad}); the parameters from before "
                                       "that step are kept"}
            self.history.divergence = self.diverged
            return {"iteration": iteration, "epoch": self.epoch, "cost": float(cost),
                    "diverged": self.diverged}
        stats = np.empty((net.n_layers, len(LAYER_STATS)), dtype=np.float64)
        stats[:, 0] = np.sqrt(grad_sq[:, 0])  # dW_norm
        stats[:, 1] = np.sqrt(grad_sq[:, 1])  # db_norm
        stats[:, 2] = np.sqrt(param_sq[:, 0])  # W_norm
        for l, ((dW, _), (uW, _)) in enumerate(zip(grads, updates, strict=True)):
            stats[l, 3] = np.abs(dW).sum() / dW.size  # dW_mean_abs
            stats[l, 4] = np.sqrt(np.vdot(uW, uW)) / max(stats[l, 2], 1e-30)  # update_ratio
        health = self._unit_health.finish()
        self.history.trajectory.add(iteration, net.params, X.shape[0])  # the weights of this step's cost
        net.params = new_params
        self.iteration += 1
        self.samples_seen += X.shape[0]
        self.history.append(iteration, self.epoch, cost, stats, health.shares)
        if health.histograms is not None:
            self.history.histograms.add(iteration, health.histograms.low, health.histograms.high,
                                        health.histograms.shares)
        record = {"iteration": iteration, "epoch": self.epoch, "cost": cost,
                  "layers": [dict(zip(LAYER_STATS, map(float, row), strict=True)) for row in stats]}
        if self.x_test is not None and (self.iteration % self.eval_every == 0):
            record.update(self._evaluate_test())
        if self.epoch_observer is not None and (self.batch_size is None or self._cursor >= len(self.x_train)):
            self.epoch_observer(self)
        return record

    @staticmethod
    def _first_bad_row(squared_norms):
        """1-based number of the first layer whose squared norms are not finite, or None."""
        if np.isfinite(squared_norms).all():  # nearly always: one check instead of four
            return None
        bad = np.flatnonzero(~np.isfinite(squared_norms).all(axis=1))
        return int(bad[0]) + 1 if bad.size else None

    def _evaluate_test(self):
        test_cost, test_accuracy = self.network.evaluate(self.x_test, self.y_test)
        # A test evaluation is named by the steps done, like a step's cost (the cost at iteration i
        # is that of the parameters after i steps): the one after step 99 is iteration 100.
        result = {"test_iteration": self.iteration, "test_cost": test_cost, "test_accuracy": test_accuracy}
        self.history.add_evaluation({"iteration": self.iteration, "test_cost": test_cost,
                                     "test_accuracy": test_accuracy})
        return result

    def evaluate(self):
        """Final figures: train and test cost and accuracy with the current parameters."""
        with self.lock:
            train_cost, train_accuracy = self.network.evaluate(self.x_train, self.y_train)
            result = {"train_cost": train_cost, "train_accuracy": train_accuracy}
            if self.x_test is not None:
                result["test_cost"], result["test_accuracy"] = self.network.evaluate(
                    self.x_test, self.y_test)
            return result

    def snapshot(self):
        """A consistent copy of what a viewer needs; safe to read after the lock is gone."""
        with self.lock:
            return {"iteration": self.iteration, "epoch": self.epoch, "seconds": self.seconds,
                    "params": list(self.network.params), "optimizer_values": self.optimizer.values(),
                    **self.penalties(), "diverged": self.diverged, "last": self.history.last()}


def l1_stop_at_zero(W, W_new, penalty_step):
    """TensorFlow Playground's L1 rule for one gradient-descent step W -> W_new whose penalty part
    was penalty_step * sign(W) (penalty_step = l1 * learning rate): where that part took a weight
    across zero (the weight before it and after it have opposite signs), the weight stops at zero.
    A weight that the data's gradient alone takes across zero goes on. W_new is the step's own new
    array (changed in place); W is left alone."""
    before_penalty = W_new + penalty_step * np.sign(W)
    crossed = before_penalty * W_new < 0
    if crossed.any():
        W_new[crossed] = 0
    return W_new


def _check_schedule(lr_schedule, schedule_iterations):
    SETTINGS["lr_schedule"].parse(lr_schedule)
    if lr_schedule == "cosine" and not schedule_iterations:
        raise InputError("lr_schedule", "cosine needs the number of iterations to decay over")
