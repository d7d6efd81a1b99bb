"""What the Train page asks of its run's diagnostics (backprop.diagnostics): the cadences it measures
at, the banner that explains a divergence, and the unit-health line read from the set-up.

No Streamlit here: the page draws what these return. Everything is read from the run's RunView (a
copy) or set on its `RunDiagnostics`, never under the trainer's lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from backprop.diagnostics import NOISE_EVERY, SHARPNESS_EVERY, Setup, health_reading

from .refresh import Rate
from .url_state import plain

SHARPNESS_CHOICES = (None, 5, 10, 20, 50, 100, 500)  # steps between two λ_max measurements (None: off)
NOISE_CHOICES = (None, 20, 100, 500)  # steps between two B_simple measurements
DEFAULT_SHARPNESS_EVERY = SHARPNESS_EVERY
DEFAULT_NOISE_EVERY = NOISE_EVERY
# The banner looks once a second while training; the stability panel every 2 s. Both read copies the
# diagnostics keep (no trainer lock) and draw little, so they keep their period unless drawing takes
# all of it: a slow draw on a busy machine does not rerun the whole page to slow them down (a rerun
# fades every chart for a moment).
RATES = {"stability": Rate(3.0, keep_base_up_to=1.0)}


def every_label(every):
    return "off" if every is None else f"every {every} steps"


def configure(studio, sharpness_every=DEFAULT_SHARPNESS_EVERY, noise_every=DEFAULT_NOISE_EVERY):
    """The Train page's diagnostics for the studio's run: the cost watch on, λ_max and B_simple at
    these cadences (None: off). Called on every run of the page, so a run a button just built (Train,
    Reset) gets them too; the diagnostics thread then catches up from where training began."""
    run = studio.run
    if run is not None and run.diagnostics is not None:
        run.diagnostics.configure(watch=True, sharpness_every=sharpness_every, noise_every=noise_every)


def diagnostics_view(studio):
    """The run's DiagnosticsView now (sharpness, noise scale, a diagnosis), or None before a run is
    built. Read without the trainer's lock: the diagnostics keep their own."""
    run = studio.run
    if run is None or run.diagnostics is None:
        return None
    return run.diagnostics.view()


def _markers(studio):
    trainer = studio.trainer
    if trainer is None:
        return []
    with trainer.reading():
        return list(trainer.history.markers)


@dataclass(frozen=True)
class Banner:
    kind: str  # "error" (diverging, or diverged) or "warning" (it rose, then recovered or was changed)
    text: str  # Markdown


def banner(studio):
    """The banner at the top of the Train page: the run's explanation of a divergence, or None.

    A NaN/Inf's explanation replaces the studio's own divergence message (it says the same, with
    what was measured), so the page shows it once. A rising cost that came back down, or that a
    setting changed since, is a warning rather than an error."""
    diagnostics = diagnostics_view(studio)
    diagnosis = diagnostics.diagnosis if diagnostics is not None else None
    if diagnosis is None:
        return None
    text = plain(diagnosis.text)
    if diagnosis.kind == "nan":
        if studio.stop_reason == "diverged" and studio.message is not None and studio.message[0] == "error":
            studio.message = None
        return Banner("error", f"**Diverged.** {text} Then press Reset.")
    if diagnosis.recovered is not None:
        return Banner("warning", f"**The cost rose, then came back down by iteration "
                                 f"{diagnosis.recovered}.** {text}")
    changed = [m for m in _markers(studio) if m["iteration"] > diagnosis.iteration]
    if changed:
        marker = changed[-1]
        return Banner("warning", f"**Before {plain(marker['setting'])} changed at iteration "
                                 f"{marker['iteration']}:** {text}")
    return Banner("error", f"**Diverging.** {text}")


def health_line(view, config):
    """The unit-health caption: the mostly dead or saturated layers and what to try, read from the
    set-up in use (`config`: the studio's, live settings included), or None."""
    if view is None:
        return None
    return unit_health_line(view.unit_health, view.iterations, config, len(view.params) or None)


def unit_health_line(unit_health, iterations, config, n_layers=None):
    """health_line from a history's unit health (steps, hidden layers, 2) and its iterations: the
    Train page's caption and Inspect's say the same."""
    if not len(unit_health) or unit_health.shape[1] == 0:
        return None
    setup = Setup.of_config(config, n_layers)
    first_iteration = int(iterations[0]) if len(iterations) else 0
    return health_reading(unit_health[-1], setup, unit_health[0], first_iteration)
