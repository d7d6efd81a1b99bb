"""How often each live view of a page redraws while training.

Each view has a base period and may take a share of it to draw; a view that draws too slowly
is redrawn less often, so drawing never crowds out training. The controller keeps a smoothed
drawing time per view in a mapping (the page's session state) and says when the period in
use has drifted so far from the right one that the page should be rerun to apply it.

All sessions' views also share the server: their drawing runs in one process, on one interpreter
lock, beside the training and the event loop that sends each session its messages. When together
they would take more than DRAW_SHARE of a core at their base periods, every view's period is
stretched by the same factor (`ServerLoad`), so a class of 16 Playgrounds each refreshes less
often instead of none refreshing at all. Measured with `benchmarks/bench_load.py --playground 16`
(one Chromium tab, 15 screenless sessions): without the stretch each session asked for ~10
fragment runs a second, the script threads ran back to back, and Streamlit dropped each run's
unsent deltas when the session's next run started: the maps reached the sessions at 0.0-0.1 Hz.
With it, every session's maps came at 1.1-1.5 Hz and it trained at 158-192 steps/s with a share
of 0.2 (three runs); a share of 0.3 gave maps at 1.6 Hz but 140-157 steps/s (the share counts each
draw's own thread CPU; the page's run around it and the event loop that sends its messages come on
top).
"""

import threading
import time
from dataclasses import dataclass

RENDER_SHARE = 0.10  # a view without a required rate may take 10% of its period to draw
DRAW_SHARE = 0.2  # of one core: what every session's live views may take of the server together
STALE_SECONDS = 5.0  # a view not drawn for this long (its run paused, its tab closed) asks nothing
# A new period is applied by rerunning the whole page (a fragment's run_every is set when the page
# runs), at most this often: under a class's load a page run takes seconds, the load moves while
# it runs, and a page that reran each time its period drifted never finished a run.
APPLY_SECONDS = 3.0


def refresh_period(base, render_seconds, share=RENDER_SHARE, keep_base_up_to=None):
    """How often a live view should redraw: its base period, lengthened so drawing takes at most
    `share` of it. A view with a required rate (`keep_base_up_to`, e.g. 0.5 for the cost chart)
    keeps its base period until drawing takes more than that share of it."""
    wanted = render_seconds / share
    if keep_base_up_to is not None:
        wanted = min(wanted, render_seconds / keep_base_up_to)
    return max(base, wanted)


@dataclass(frozen=True)
class Rate:
    base: float  # seconds between redraws when drawing is cheap
    keep_base_up_to: float | None = None  # share of the base that drawing may take before it slows


# Status + cost chart must refresh at least twice a second and the heatmap once, so their periods
# sit 10% under 0.5 s and 1 s (a timer tick can come late), unless drawing takes half their period;
# gradients (3 s) and histograms (5 s) slow down past RENDER_SHARE.
TRAIN_PAGE = {"fast": Rate(0.45, 0.5), "heatmap": Rate(0.9, 0.5), "gradients": Rate(3.0),
              "histograms": Rate(5.0)}


class ServerLoad:
    """What every session's live views ask of the server together: each view's CPU seconds per
    draw over its base period (the cores it would take at its base rate), while it is drawn."""

    def __init__(self, share=DRAW_SHARE, stale_seconds=STALE_SECONDS, clock=time.monotonic):
        self.share = share
        self.stale_seconds = stale_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._views = {}  # (owner, view) -> (cores at its base period, when last drawn)

    def record(self, owner, view, cores):
        with self._lock:
            self._views[(owner, view)] = (cores, self.clock())

    def stretch(self):
        """The factor on every view's base period that keeps all the drawing within the share."""
        now = self.clock()
        with self._lock:
            for key in [key for key, (_, seen) in self._views.items() if now - seen > self.stale_seconds]:
                del self._views[key]
            wanted = sum(cores for cores, _ in self._views.values())
        return max(1.0, wanted / self.share)


SERVER = ServerLoad()


class RefreshRates:
    """The live views' periods for one page, with their drawing times kept in `state`; `owner` is
    the session's (its owner token), by which `load` counts each session's views once."""

    def __init__(self, rates, state, owner, smoothing=0.2, load=SERVER):
        self.rates = rates
        self.state = state
        self.owner = owner
        self.smoothing = smoothing
        self.load = load

    def _key(self, name):
        return f"render_seconds_{name}"

    def period(self, name):
        """The view's refresh period now: its base, lengthened when drawing it takes too long, and
        stretched with every view's when the server's drawing would take more than its share."""
        rate = self.rates[name]
        seconds = self.state.get(self._key(name), 0.0)
        own = refresh_period(rate.base, seconds, RENDER_SHARE, rate.keep_base_up_to)
        return max(own, rate.base * self.load.stretch())

    def _smooth(self, key, seconds):
        old = self.state.get(key)
        self.state[key] = seconds if old is None else (1 - self.smoothing) * old + self.smoothing * seconds
        return self.state[key]

    def record(self, name, seconds, cpu_seconds=None):
        """One drawing took `seconds` (and `cpu_seconds` of this thread's CPU, what it asked of the
        server): fold them into the view's smoothed times."""
        self._smooth(self._key(name), seconds)
        if cpu_seconds is not None:
            cpu = self._smooth(f"cpu_seconds_{name}", cpu_seconds)
            self.load.record(self.owner, name, cpu / self.rates[name].base)

    def drifted(self, name, in_use):
        """Whether the right period has moved far (x1.5) from the one in use."""
        return not 2 / 3 < self.period(name) / in_use < 1.5

    def apply_now(self, name, in_use, now=None):
        """Whether to rerun the page now to apply a drifted period: at most every APPLY_SECONDS per
        session (a yes is noted as the latest)."""
        now = time.monotonic() if now is None else now
        last = self.state.get("period_applied_at")
        if not self.drifted(name, in_use) or (last is not None and now - last < APPLY_SECONDS):
            return False
        self.state["period_applied_at"] = now
        return True

    def describe(self):
        return ", ".join(f"{self.period(name):.1f} s" for name in self.rates)
