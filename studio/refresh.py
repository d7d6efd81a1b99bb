"""How often each live view of a page redraws while training.

Each view has a base period and may take a share of it to draw; a view that draws too slowly
is redrawn less often, so drawing never crowds out training. The controller keeps a smoothed
drawing time per view in a mapping (the page's session state) and says when the period in
use has drifted so far from the right one that the page should be rerun to apply it.
"""

from dataclasses import dataclass

RENDER_SHARE = 0.10  # a view without a required rate may take 10% of its period to draw


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


class RefreshRates:
    """The live views' periods for one page, with their drawing times kept in `state`."""

    def __init__(self, rates, state, smoothing=0.2):
        self.rates = rates
        self.state = state
        self.smoothing = smoothing

    def _key(self, name):
        return f"render_seconds_{name}"

    def period(self, name):
        """The view's refresh period now: its base, lengthened when drawing it takes too long."""
        rate = self.rates[name]
        seconds = self.state.get(self._key(name), 0.0)
        return refresh_period(rate.base, seconds, RENDER_SHARE, rate.keep_base_up_to)

    def record(self, name, seconds):
        """One drawing took `seconds`: fold it into the view's smoothed drawing time."""
        key = self._key(name)
        old = self.state.get(key)
        self.state[key] = seconds if old is None else (1 - self.smoothing) * old + self.smoothing * seconds

    def drifted(self, name, in_use):
        """Whether the right period has moved far (x1.5) from the one in use: time to apply it."""
        return not 2 / 3 < self.period(name) / in_use < 1.5

    def describe(self):
        return ", ".join(f"{self.period(name):.1f} s" for name in self.rates)
