"""What one setting is: its type, allowed values, default, help, and how it travels.

A `Setting` is declared once (the table in `settings.py`, or an optimizer's own `settings`) and
everything else is derived from it: the config dataclass's field, the CLI option, the sidebar
widget, the URL's encoding and decoding, validation with a message naming the field, and what a
sweep may vary. scikit-learn's `_parameter_constraints` is the model, with more attached.
"""

import math
import re
from dataclasses import dataclass

from .errors import InputError

KINDS = ("int", "float", "choice", "choice_list", "int_list", "classes", "text", "flag")


@dataclass(frozen=True)
class Setting:
    name: str  # the config field, the URL key, and (dashed) the CLI option
    kind: str  # one of KINDS
    default: object
    label: str  # what a person reads next to the widget
    help: str
    group: str = "learning"  # "task", "network" or "learning": the CLI's and the sidebar's grouping
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the bound itself is refused (a learning rate > 0; a decay rate < 1)
    high_open: bool = False
    choices: tuple = ()  # for "choice"
    choice_help: tuple = ()  # one description per choice, shown as help (optional)
    none_word: str | None = None  # the word meaning "no value": "full" batch, "all" classes, "" subset
    live: bool = False  # applies at the next step; otherwise it waits for a Reset
    data: bool = False  # it changes which data are loaded
    sweep: bool = False  # a sweep may vary it
    log: bool = False  # numbers spread on a log scale (sliders, sweep ranges)
    url: bool = True  # a link may carry it (never a server path)
    cli: bool = True
    cli_aliases: tuple = ()  # more option names, e.g. ("--lr",)
    owner: str | None = None  # the optimizer this setting belongs to (shown only for it)
    datasets: tuple = ()  # when given, the setting applies only to these data sets (2D tasks)
    pattern: str | None = None  # for "text": the whole text must match this regular expression
    pattern_text: str = ""  # what the pattern allows, in words
    widget: bool = True  # the sidebar shows it (a server path is typed only at the server: the CLI)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"setting {self.name}: kind {self.kind!r} is not one of {KINDS}")

    # -- checking ------------------------------------------------------------------------
    def parse(self, value):
        """The Python value for `value` (typed, or text from a link, the CLI or a widget);
        raises InputError naming this setting and what it allows."""
        if self.none_word is not None and (value is None or _text(value).lower() in (self.none_word, "")):
            return None
        parser = getattr(self, f"_parse_{self.kind}")
        return parser(value)

    def allowed(self):
        """What this setting allows, in words, for messages and help."""
        if self.kind == "choice":
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind == "choice_list":
            return "one or more of " + ", ".join(map(str, self.choices)) + " separated by commas"
        if self.kind in ("int", "float"):
            text = self._range_text()
        elif self.kind == "int_list":
            bounded = self.low is not None and self.high is not None
            bounds = f" from {self.low} to {self.high}" if bounded else ""
            text = f"whole numbers{bounds} separated by commas, e.g. {self.encode(self.default)}"
        elif self.kind == "classes":
            text = "two different class labels from 0 to 255 such as 5,8"
        elif self.kind == "flag":
            text = "on or off (1/0, true/false, yes/no, on/off)"
        else:
            text = "text"
        if self.none_word is not None:
            text += f", or '{self.none_word}'" if self.none_word else ", or empty"
        return text

    def _range_text(self):
        low, high = self.low, self.high
        if self.kind == "int":
            if low is not None and high is not None:
                return f"a whole number from {low} to {high}"
            return f"a whole number at least {low}" if low is not None else "a whole number"
        if low == 0 and self.low_open and high is None:
            return f"a positive finite number (e.g. {self.encode(self.default)})"
        if low is not None and high is not None:
            return (f"a number in {'(' if self.low_open else '['}{low:g}, "
                    f"{high:g}{')' if self.high_open else ']'}")
        if low is not None:
            return f"a number {'>' if self.low_open else '>='} {low:g}"
        return "a number"

    def _refuse(self, value, why=None):
        shown = value if isinstance(value, (int, float)) else _short(repr(value))
        raise InputError(self.name, f"{why or 'must be ' + self.allowed()}, got {shown}")

    def _parse_int(self, value):
        if isinstance(value, bool):
            self._refuse(value)
        try:
            number = int(_text(value)) if isinstance(value, str) else int(value)
            if isinstance(value, float) and value != number:
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            self._refuse(value, f"must be {self.allowed()}; that is not a whole number")
        self._check_bounds(number, value)
        return number

    def _parse_float(self, value):
        if isinstance(value, bool):
            self._refuse(value)
        try:
            number = float(_text(value)) if isinstance(value, str) else float(value)
        except (TypeError, ValueError, OverflowError):
            self._refuse(value, f"must be {self.allowed()}; that is not a number")
        if not math.isfinite(number):
            self._refuse(value, f"must be a finite number ({self.allowed()})")
        self._check_bounds(number, value)
        return number

    def _check_bounds(self, number, value):
        low, high = self.low, self.high
        if low is not None and (number < low or (self.low_open and number == low)):
            self._refuse(number)
        if high is not None and (number > high or (self.high_open and number == high)):
            self._refuse(number)

    def _parse_choice(self, value):
        text = _text(value)
        if text not in self.choices:
            self._refuse(value, f"is not one of {', '.join(map(str, self.choices))}")
        return text

    def _parse_choice_list(self, value):
        """Some of the choices, at least one, as a tuple in the declared order."""
        items = list(value) if isinstance(value, (list, tuple)) else _text(value).split(",")
        chosen = {_text(item) for item in items if _text(item)}
        unknown = sorted(chosen - set(self.choices))
        if unknown or not chosen:
            self._refuse(value, f"must be {self.allowed()}")
        return tuple(choice for choice in self.choices if choice in chosen)

    def _parse_text(self, value):
        if value is None:
            return None
        text = _text(value)
        if "\x00" in text:
            self._refuse(value, "contains a null byte")
        if text and self.pattern is not None and not re.fullmatch(self.pattern, text):
            self._refuse(value, f"must be {self.pattern_text}")
        return text or None

    def _parse_flag(self, value):
        if isinstance(value, bool):
            return value
        text = _text(value).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        self._refuse(value)

    def _parse_int_list(self, value):
        items = list(value) if isinstance(value, (list, tuple)) else _text(value).split(",")
        items = [item.strip() if isinstance(item, str) else item for item in items]
        if not items or items == [""]:
            raise InputError(self.name, f"is empty; give {self.allowed()}")
        if len(items) > MAX_LIST:
            raise InputError(self.name, f"at most {MAX_LIST} numbers, got {len(items)}")
        numbers = []
        for item in items:
            try:
                number = int(item)
                if isinstance(item, float) and item != number:
                    raise ValueError
            except (TypeError, ValueError, OverflowError):
                raise InputError(self.name, f"{item!r} is not a whole number; give {self.allowed()}") \
                    from None
            if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
                raise InputError(self.name, f"each number must be from {self.low} to {self.high}, "
                                            f"got {number}")
            numbers.append(number)
        return numbers

    def _parse_classes(self, value):
        items = list(value) if isinstance(value, (list, tuple)) else _text(value).split(",")
        try:
            labels = tuple(int(item) for item in items)
        except (TypeError, ValueError, OverflowError):
            self._refuse(value, f"must be {self.allowed()} (or '{self.none_word}')")
        # Labels, not only digits: EMNIST letters and a person's own data go past 9. Whether the
        # data set has them is checked when it is loaded.
        if len(labels) != 2 or labels[0] == labels[1] or not all(0 <= d <= 255 for d in labels):
            self._refuse(value, f"must be {self.allowed()} (or '{self.none_word}')")
        return labels

    # -- writing -------------------------------------------------------------------------
    def encode(self, value):
        """The value as short text (URL, CLI, widgets); `parse(encode(v)) == v`."""
        if value is None:
            return self.none_word or ""
        if self.kind in ("int_list", "classes"):
            return ",".join(str(int(v)) for v in value)
        if self.kind == "choice_list":
            return ",".join(value)
        if self.kind == "float":
            return repr(float(value))  # the shortest text that reads back as the same number
        if self.kind == "flag":
            return "1" if value else "0"
        return str(value)

    @property
    def option(self):
        """The CLI option: --learning-rate for learning_rate."""
        return "--" + self.name.replace("_", "-")


MAX_LIST = 32  # numbers in one list setting, so a link cannot make the parser work for long


def _text(value):
    return str(value).strip()


def _short(text, limit=60):
    """A value quoted in a message, cut so that a long one (a hostile link) stays readable."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"
