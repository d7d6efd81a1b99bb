"""What a sweep searches: the base set-up, the settings it varies (Dimensions), and how Optuna
chooses and prunes (SweepSpec). Everything is checked here, before anything starts.

Space syntax (one `--vary` per setting): `name=v1,v2,v3` a list of values (layer sizes: the
alternatives separated by `|`, e.g. `layers=196,1|64,1`), or `name=low:high` a range sampled by
the random and TPE strategies, on the setting's own scale (log for a learning rate) unless
`:log` or `:linear` follows; `name=low:high:step` takes only low, low + step, ..., high (the step
must divide the range: `batch_size=16:512:16`), and `:int` whole numbers only.

A list of numbers (`batch_size=30,100,10`, `learning_rate=0.01,0.1`) is an Optuna categorical of
numbers, in the order given (ints stay int, floats float), so the samplers and optuna-dashboard see
numbers; layer sizes, names and a list with `full` are the settings table's text. A setting that
belongs to one optimizer (`Setting.owner`: momentum's momentum, Adam's beta1, beta2 and epsilon) is
asked only in the trials of that optimizer (`SweepSpec.suggest`), and a grid counts it only there.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ..config import TrainConfig
from ..data.tasks import nominal_size
from ..errors import InputError
from ..setting import Setting
from ..settings import SETTINGS, SWEEPABLE

STRATEGIES = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "halving", "hyperband")
# What a sweep optimises: any recorded result, with its natural direction. A `best_` metric is the
# best value over the trial's evaluations (its test evaluations, the pruner's reports and the end),
# the plain one the value when it ended.
NATURAL = {"test_cost": "minimize", "test_accuracy": "maximize", "train_cost": "minimize",
           "train_accuracy": "maximize"}
METRICS = {**NATURAL, **{f"best_{name}": direction for name, direction in NATURAL.items()}}
DEFAULT_METRIC = "test_cost"
DIRECTIONS = ("minimize", "maximize")
DEFAULT_TRIALS = 16  # random and TPE, when --trials is not given
MAX_TRIALS = 1000
MAX_VALUES = 64  # values in one list
REPORTS_PER_TRIAL = 10  # the pruner's intermediate values per trial (the sweep's, not the set-up's)
# The sweep's own settings, declared like the training settings (backprop/setting.py).
TRIALS = Setting("trials", "int", None, "Trials", "How many trials (random and TPE; a grid runs all its "
                 "set-ups, or at most this many)", low=1, high=MAX_TRIALS, none_word="")
SAMPLER_SEED = Setting("seed", "int", 0, "Sampler seed", "The same seed, space and strategy choose the "
                       "same trials", low=0, high=2**32 - 1)


@dataclass(frozen=True)
class Dimension:
    """One setting a sweep varies: a list of values, or a range (low, high) for random/TPE."""

    name: str
    values: tuple | None = None  # parsed values, for a list
    low: float | None = None
    high: float | None = None
    log: bool = False
    text: str = ""  # as given, e.g. "learning_rate=0.01,0.1"; kept in the sweep's record
    step: float | None = None  # a range's step (low:high:step): only low, low + step, ..., high
    integer: bool = False  # a float setting's range of whole numbers (:int)
    # A list of numbers in a journal written before lists of numbers were kept as numbers: Optuna
    # goes on with its text choices ('30', '100'); see backprop.sweep.journal.as_recorded.
    text_choices: bool = False

    @property
    def setting(self):
        return SETTINGS[self.name]

    @property
    def numeric(self):
        """Whether Optuna keeps this list's values as numbers: every value of an int or float
        setting is a number (a batch size list with 'full' is not)."""
        return (self.values is not None and not self.text_choices and self.setting.kind in ("int", "float")
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values))

    def choices(self):
        """The values as Optuna sees them, in the order given: numbers for a list of numbers (ints
        stay int, floats float), else the settings table's text form (plain and hashable)."""
        if self.numeric:
            return tuple(self.values)
        return self.text_form()

    def text_form(self):
        """The values as the settings table's text: what Optuna kept of every list before lists of
        numbers were kept as numbers."""
        return tuple(self.setting.encode(value) for value in self.values)

    def optuna_value(self, value):
        """What Optuna keeps for this setting's Python value (None when it is not one of the list's
        values, or not a number in a range)."""
        if self.values is not None:
            choice = value if self.numeric else self.setting.encode(value)
            number = isinstance(choice, (int, float)) and not isinstance(choice, bool)
            return choice if (number or not self.numeric) and choice in self.choices() else None
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.values is not None:
            return CategoricalDistribution(self.choices())
        if self.setting.kind == "int" or self.integer:
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low), float(self.high), log=self.log, step=self.step)

    def suggest(self, trial):
        """Ask an Optuna trial for this setting (its public suggest_* calls, with exactly
        `distribution()`); returns what Optuna chose."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        distribution = self.distribution()
        if isinstance(distribution, CategoricalDistribution):
            return trial.suggest_categorical(self.name, distribution.choices)
        if isinstance(distribution, IntDistribution):
            return trial.suggest_int(self.name, distribution.low, distribution.high, step=distribution.step,
                                     log=distribution.log)
        return trial.suggest_float(self.name, distribution.low, distribution.high, step=distribution.step,
                                   log=distribution.log)

    def value(self, optuna_value):
        """The setting's Python value for what Optuna chose."""
        return self.setting.parse(optuna_value)


def sweepable_text():
    return ", ".join(SWEEPABLE)


def parse_dimension(text, base=None):
    """'learning_rate=0.01,0.1' -> Dimension; every value is checked by the settings table (and,
    with a base set-up, as part of it). A bad one raises InputError naming the setting."""
    name, sep, spec = str(text).partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise InputError("vary", f"{text!r} is not NAME=VALUES (e.g. learning_rate=0.01,0.1 or "
                                 f"layers=196,1|64,1); sweepable: {sweepable_text()}")
    if name == "lr":
        name = "learning_rate"
    if name not in SETTINGS:
        raise InputError("vary", f"{name!r} is not a setting; sweepable: {sweepable_text()}")
    setting = SETTINGS[name]
    if not setting.sweep:
        raise InputError(name, f"a sweep cannot vary {name}; sweepable: {sweepable_text()}")
    spec = spec.strip()
    if not spec:
        raise InputError(name, f"no values given; e.g. {name}={setting.encode(setting.default)}")
    range_match = re.fullmatch(r"([^:,|]+):([^:,|]+)((?::[^:,|]+)*)", spec)
    if range_match and setting.kind in ("int", "float"):
        low, high = setting.parse(range_match.group(1)), setting.parse(range_match.group(2))
        if low is None or high is None or not low < high:
            raise InputError(name, f"a range is low:high with low < high, got {spec!r}")
        scale, integer, step = None, setting.kind == "int", None
        for word in filter(None, range_match.group(3).split(":")):
            word = word.strip()
            if word in ("log", "linear"):
                scale = word
            elif word == "int":
                integer = True
            else:
                try:
                    step = float(word)
                except ValueError:
                    raise InputError(name, f"{word!r} in {spec!r} is not a step, log, linear or int "
                                           "(low:high[:step][:log|:linear][:int])") from None
        log = setting.log if scale is None else scale == "log"
        if integer and (low != int(low) or high != int(high)):
            raise InputError(name, f"a range of whole numbers needs whole ends, got {spec!r}")
        if step is not None:
            if not (step > 0 and step != float("inf")) or (integer and step != int(step)):
                raise InputError(name, f"a step is a number > 0{' (whole)' if integer else ''}, got {spec!r}")
            if scale == "log":
                raise InputError(name, f"a range with a step is linear, not :log, got {spec!r}")
            log = False
            count = (high - low) / step
            if abs(count - round(count)) > 1e-9 * max(1.0, abs(count)):
                raise InputError(name, f"the step {step:g} does not divide the range {low:g}..{high:g} "
                                       f"({count:.4g} steps); e.g. {name}={low:g}:"
                                       f"{low + step * max(1, int(count)):g}:{step:g}")
        if log and low <= 0:
            raise InputError(name, f"a log range needs low > 0, got {spec!r}; use :linear")
        if integer:
            low, high, step = int(low), int(high), None if step is None else int(step)
        dimension = Dimension(name, low=low, high=high, log=log, text=f"{name}={spec}", step=step,
                              integer=integer and setting.kind != "int")
        checked = (low, high)
    else:
        separator = "|" if setting.kind == "int_list" else ","
        if spec.count(separator) >= MAX_VALUES:  # counted before anything is split
            raise InputError(name, f"at most {MAX_VALUES} values, got {spec.count(separator) + 1}")
        parts = spec.split(separator)
        parts = [part.strip() for part in parts]
        if any(part == "" for part in parts):
            raise InputError(name, f"an empty value in {spec[:200]!r}; separate values with {separator}")
        values = []
        for part in parts:
            value = setting.parse(part)
            if value not in values:
                values.append(value)
        dimension = Dimension(name, values=tuple(values), text=f"{name}={spec}")
        checked = values
    if base is not None:
        for value in checked:
            config = dataclasses.replace(base, **{name: value}).validated()
            size = nominal_size(config)
            if size is not None:  # refused before the sweep starts, not on a worker
                config.check_memory(*size)
    return dimension


@dataclass(frozen=True)
class SweepSpec:
    """A sweep: a base set-up, what varies, and how Optuna chooses and prunes.

    The base is the user's set-up as given (its eval_every too: a trial records the same test
    evaluations as `backprop train`); the pruner's own cadence is `report_every`."""

    base: TrainConfig
    space: tuple = ()  # Dimensions
    strategy: str = "grid"
    trials: int | None = None  # grid: the whole grid unless fewer; random/tpe: DEFAULT_TRIALS
    seed: int = 0
    pruner: str = "none"
    metric: str = DEFAULT_METRIC
    direction: str = "minimize"
    target: float | None = None  # no new trials once the best value reaches it

    @classmethod
    def build(cls, base, vary, strategy="grid", trials=None, seed=0, pruner="none", iterations=None,
              metric=DEFAULT_METRIC, direction=None, target=None):
        """Checked before anything starts: every problem raises InputError naming the field."""
        if not isinstance(base, TrainConfig):
            raise InputError("base", "a sweep starts from a TrainConfig")
        if iterations is not None:
            base = dataclasses.replace(base, iterations=SETTINGS["iterations"].parse(iterations))
        base = base.validated()
        if strategy not in STRATEGIES:
            raise InputError("strategy", f"{strategy!r} is not one of {', '.join(STRATEGIES)}")
        if pruner not in PRUNERS:
            raise InputError("pruner", f"{pruner!r} is not one of {', '.join(PRUNERS)}")
        if isinstance(vary, str):
            vary = [vary]
        if not vary:
            raise InputError("vary", f"give at least one setting to vary, e.g. learning_rate=0.01,0.1; "
                                     f"sweepable: {sweepable_text()}")
        space = tuple(parse_dimension(text, base) for text in vary)
        names = [d.name for d in space]
        for name in names:
            if names.count(name) > 1:
                raise InputError(name, "is varied twice; give all its values in one --vary")
        optimizers = _optimizers(base, space)
        for dimension in space:
            owner = dimension.setting.owner
            if owner is not None and owner not in optimizers:
                tried = ", ".join(optimizers)
                raise InputError(dimension.name, f"belongs to the {owner} optimizer, and no trial of this "
                                                 f"sweep uses it (its optimizer: {tried}); vary optimizer "
                                                 f"with {owner} among its values, or start from "
                                                 f"--optimizer {owner}")
        if strategy == "grid":
            ranged = next((d for d in space if d.values is None), None)
            if ranged is not None:
                raise InputError(ranged.name, "a grid needs a list of values (e.g. 0.01,0.1,1), not a "
                                              "range; ranges suit --strategy random or tpe")
        seed, trials = SAMPLER_SEED.parse(seed), TRIALS.parse(trials)
        metric, direction, target = check_objective(metric, direction, target)
        spec = cls(base, space, strategy, trials, seed, pruner, metric, direction, target)
        if spec.total() > MAX_TRIALS:  # the grid's size is a product of counts: nothing is built
            raise InputError("vary", f"the grid has {spec.grid_size():,} set-ups; at most {MAX_TRIALS} "
                                     "(give --trials to run that many of them, or fewer values)")
        return spec

    @property
    def report_every(self):
        """Steps between a trial's reports of its test cost to the pruner (None without one). The
        sweep's own cadence: never written into a trial's set-up."""
        if self.pruner == "none":
            return None
        return max(1, self.base.iterations // REPORTS_PER_TRIAL)

    def grid_size(self):
        """The grid's distinct set-ups: a setting that belongs to an optimizer multiplies only the
        set-ups of that optimizer (sgd, momentum x 3 momenta, adam x 2 beta1: 1 + 3 + 2)."""
        def count(dimension):
            return len(dimension.values) if dimension.values is not None else 1

        size = 1
        for dimension in self.space:
            if dimension.setting.owner is None and dimension.name != "optimizer":
                size *= count(dimension)
        owned = 0
        for optimizer in _optimizers(self.base, self.space):
            each = 1
            for dimension in self.space:
                if dimension.setting.owner == optimizer:
                    each *= count(dimension)
            owned += each
        return size * owned

    def applies(self, name, chosen):
        """Whether setting `name` applies to a trial whose varied settings so far are `chosen`
        ({name: Python value}): one that belongs to an optimizer (the settings table's
        Setting.owner) only where the trial's optimizer (chosen, or the base's) is that one."""
        owner = SETTINGS[name].owner
        return owner is None or chosen.get("optimizer", self.base.optimizer) == owner

    def suggest(self, trial):
        """Ask an Optuna trial (from `study.ask()`) for the settings it takes: every varied
        setting, the optimizer before the settings that belong to one, and those only where they
        apply. Returns {name: Python value}; a setting left out does not appear (Optuna records no
        parameter for it, and the trial table shows it empty)."""
        chosen = {}
        for dimension in sorted(self.space, key=lambda d: d.setting.owner is not None):
            if self.applies(dimension.name, chosen):
                chosen[dimension.name] = dimension.value(dimension.suggest(trial))
        return chosen

    def total(self):
        """How many trials the sweep runs."""
        if self.strategy == "grid":
            return min(self.grid_size(), self.trials or self.grid_size())
        return self.trials or DEFAULT_TRIALS

    def heaviest_configs(self):
        """The set-ups whose trials take the most memory, one per layer sizes the space tries
        (its largest batch and the optimizer that keeps the most arrays with them; nothing else a
        sweep varies changes a trial's memory): a list of at most MAX_VALUES TrainConfigs."""
        from ..optimizers import OPTIMIZERS

        by_name = {d.name: d for d in self.space}

        def values(name):
            dimension = by_name.get(name)
            if dimension is None:
                return [getattr(self.base, name)]
            if dimension.values is not None:
                return list(dimension.values)
            return [dimension.high]  # a range: its top

        batches = values("batch_size")
        batch = None if None in batches else max(batches)  # full batch: every training sample
        optimizer = max(values("optimizer"), key=lambda name: OPTIMIZERS[name].state_arrays)
        return [dataclasses.replace(self.base, layers=list(layers), batch_size=batch,
                                    optimizer=optimizer).validated() for layers in values("layers")]

    def trial_config(self, params):
        """The set-up of one trial: the base with Optuna's chosen values (by setting name)."""
        by_name = {d.name: d for d in self.space}
        values = {name: by_name[name].value(value) for name, value in params.items()}
        return dataclasses.replace(self.base, **values).validated()

    def config_of(self, values):
        """The set-up of one trial from its settings' Python values (a TrialView's params)."""
        return dataclasses.replace(self.base, **values).validated()

    def to_dict(self):
        return {"base": self.base.to_dict(), "vary": [d.text for d in self.space],
                "strategy": self.strategy, "trials": self.trials, "seed": self.seed, "pruner": self.pruner,
                "metric": self.metric, "direction": self.direction, "target": self.target}

    @classmethod
    def from_dict(cls, data):
        """A recorded spec (one recorded before metrics could be chosen: the test cost, minimised)."""
        return cls.build(TrainConfig.from_dict(data["base"]), data["vary"], data["strategy"],
                         data["trials"], data["seed"], data["pruner"],
                         metric=data.get("metric", DEFAULT_METRIC), direction=data.get("direction"),
                         target=data.get("target"))

    @property
    def metric_label(self):
        """The metric as people read it: "test cost", "best test accuracy"."""
        return metric_label(self.metric)

    def better(self, a, b):
        """Whether value a is better than b in the sweep's direction (b None: a is)."""
        if b is None:
            return True
        return a < b if self.direction == "minimize" else a > b

    def reached(self, value):
        """Whether a value reaches the target (no target: never)."""
        if self.target is None or value is None:
            return False
        return value <= self.target if self.direction == "minimize" else value >= self.target


def _optimizers(base, space):
    """The optimizers a sweep's trials use: the varied ones, or the base's."""
    for dimension in space:
        if dimension.name == "optimizer" and dimension.values is not None:
            return list(dimension.values)
    return [base.optimizer]


def metric_label(metric):
    return metric.replace("_", " ")


def check_objective(metric, direction=None, target=None):
    """(metric, direction, target) checked: an unknown metric, a direction that is not the
    metric's (a cost is minimised, an accuracy maximised) or a target that is not a finite number
    (an accuracy's between 0 and 1) is an InputError naming the field."""
    import math

    metric = DEFAULT_METRIC if metric in (None, "") else str(metric).strip().replace("-", "_")
    if metric not in METRICS:
        raise InputError("metric", f"{metric!r} is not a recorded result; one of {', '.join(METRICS)}")
    natural = METRICS[metric]
    if direction in (None, ""):
        direction = natural
    direction = {"min": "minimize", "max": "maximize", "minimise": "minimize",
                 "maximise": "maximize"}.get(str(direction).strip().lower(), str(direction).strip().lower())
    if direction not in DIRECTIONS:
        raise InputError("direction", f"{direction!r} is not one of {', '.join(DIRECTIONS)}")
    if direction != natural:
        kind = "a cost is lower when better" if natural == "minimize" else "an accuracy is higher when better"
        raise InputError("direction", f"{direction} does not fit {metric} ({kind}: {natural})")
    if target is not None and target != "":
        try:
            value = float(target)
        except (TypeError, ValueError):
            raise InputError("target", f"{target!r} is not a number") from None
        if isinstance(target, bool) or not math.isfinite(value):
            raise InputError("target", f"{target!r} is not a finite number")
        if "accuracy" in metric and not 0 <= value <= 1:
            raise InputError("target", f"an accuracy is between 0 and 1, not {value:g}")
        if "cost" in metric and value < 0:
            raise InputError("target", f"a cost is at least 0, not {value:g}")
        target = value
    else:
        target = None
    return metric, direction, target
