"""Recording a session's training into the run store: one run per trained network.

A run opens when training starts, is marked 'stopped' (with its checkpoint) on Pause, 'running'
again on Train, and is closed as finished, diverged or stopped. Recording is a convenience:
a failure (a full disk) becomes a warning and training goes on.
"""

from backprop.paths import studio_home


class SessionRecorder:
    """The run record of whatever network a Studio trains now.

    `studio` gives the trainer and set-up to record (read when needed, so a Reset is seen);
    `warn(text)` shows a problem to the person.
    """

    def __init__(self, studio, warn, store=None):
        self.studio = studio
        self.warn = warn
        self._store = store
        self._recorder = None
        self._stopped = False  # the open run is marked stopped (paused); Train marks it running
        self._saved = None  # (run_id, iteration) of the last checkpoint written for a run
        self._saved_landscape = None  # the history's loss landscape when it was written
        self.run_id = None

    @property
    def store(self):
        if self._store is None:
            from backprop.runs import RunStore

            self._store = RunStore()
        return self._store

    @property
    def is_open(self):
        return self._recorder is not None

    def open(self, source="app"):
        """Open a run for the current network (with what it already trained). Returns whether
        this call opened it."""
        if self._recorder is not None:
            return False
        try:
            from backprop.runs import RunRecorder

            trainer, config = self.studio.trainer, self.studio.config
            self.run_id = self.store.create(config.to_dict(), source=source)
            self._recorder = RunRecorder(self.store, self.run_id)
            self._stopped = False
            if trainer is not None and trainer.iteration:
                self._recorder.add([{**row, "layers": None} for row in trainer.history.rows()])
            return True
        except Exception as error:
            self._recorder = None
            self.warn(f"This run is not recorded: {error}")
            return False

    def discard(self):
        """Forget a run opened for a start that was refused (nothing was trained in it)."""
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            try:
                self.store.delete(recorder.run_id)
            except Exception as error:
                self.warn(f"Run history could not be saved: {error}")

    def add(self, records):
        recorder = self._recorder
        if recorder is not None:
            try:
                recorder.add(records)
            except Exception as error:  # a full disk must not stop training
                self._recorder = None
                self.warn(f"Run history is no longer recorded: {error}")

    def mark_running(self):
        """Train after a Pause goes on in the same run: it is 'running' again."""
        recorder = self._recorder
        if recorder is None or not self._stopped:
            return
        try:
            recorder.store.mark_running(recorder.run_id)
            self._stopped = False
        except Exception as error:
            self.warn(f"Run history could not be saved: {error}")

    def pause(self):
        """Write what is pending and mark the run stopped, with its checkpoint; training on keeps
        the same run."""
        recorder = self._recorder
        if recorder is None:
            return
        try:
            recorder.flush()
            recorder.store.finish(recorder.run_id, self._metrics(), status="stopped",
                                  checkpoint_path=self._save_checkpoint(recorder.run_id))
            self._stopped = True
        except Exception as error:
            self.warn(f"Run history could not be saved: {error}")

    def close(self, status):
        recorder, self._recorder = self._recorder, None
        if recorder is None or recorder.closed:
            return
        try:
            recorder.close(self._metrics(), status=status,
                           checkpoint_path=self._save_checkpoint(recorder.run_id))
        except Exception as error:
            self.warn(f"Run history could not be saved: {error}")

    def _metrics(self):
        trainer = self.studio.trainer
        if trainer is None:
            return {}
        last = trainer.history.last() or {}
        metrics = {"iterations": trainer.iteration, "cost": last.get("cost")}
        if trainer.history.evaluations:
            metrics.update({k: v for k, v in trainer.history.evaluations[-1].items() if k != "iteration"})
        return metrics

    def _save_checkpoint(self, run_id):
        """The trained network of a run, as studio_home()/checkpoints/run-<id>.npz, so Compare can
        load it back; written again only when the run has trained since. Returns the path."""
        from backprop.checkpoint import save_checkpoint

        trainer = self.studio.trainer
        path = studio_home() / "checkpoints" / f"run-{run_id}.npz"
        if trainer is None:
            return None
        with trainer.lock:  # the thread has stopped (or is this one): nothing changes meanwhile
            # written again when the run trained since, or a loss landscape was kept with it since
            landscape = trainer.history.landscape
            if self._saved != (run_id, trainer.iteration) or self._saved_landscape is not landscape \
                    or not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                save_checkpoint(path, trainer.network, config=self.studio.config, history=trainer.history)
                self._saved, self._saved_landscape = (run_id, trainer.iteration), landscape
        return str(path)
