"""The set-up in the URL, so a copied link opens the same configuration (and the demo view).

A link is read and written against its page's profile (backprop/profiles.py): only the settings
that differ from that page's defaults are written, each as its setting's own short text
(`Setting.encode`): `/?layers=392,196,98,1&learning_rate=0.5&demo=1` on the Train page,
`/playground?dataset=spiral` on the Playground. Reading is forgiving: a bad value, a value past the
page's limits, or a key the page does not take is dropped with a message naming it, and the rest of
the link still applies. A link never names a path on the server (settings with `url=False`).

A page may also take a classroom's keys (its profile's `hidable` and `page_keys`): `<control>_hide=1`
hides a control (TensorFlow Playground's `*_hide`), `text_hide=1` shows no captions or notes, and
`lesson=<name>` opens a guided lesson (studio/lessons.py). `Classroom` holds them, and
`config_to_query(..., classroom=...)` writes them back, so every link round-trips.
"""

import dataclasses
import re
import urllib.parse
from dataclasses import dataclass, field

from backprop.data.tasks import nominal_size
from backprop.errors import InputError
from backprop.profiles import HIDE_SUFFIX, TRAIN
from backprop.setting import Setting, _short
from backprop.settings import SETTINGS

FIELDS = list(TRAIN.link_settings)  # the Train page's; another page's are its profile's link_settings
NOT_IN_LINKS = [name for name in TRAIN.settings if name not in TRAIN.link_settings]
DEMO = Setting("demo", "flag", False, "Demo view", "Hide the set-up and enlarge the charts for a projector",
               cli=False)
HIDE = Setting("hide", "flag", False, "Hide", "Hide this control (1) or show it (0)", cli=False)
TEXT_HIDE, LESSON = "text_hide", "lesson"


@dataclass(frozen=True)
class Classroom:
    """What a classroom link asks of a page besides its set-up: the controls it hides, no text, a
    lesson."""

    hidden: frozenset = field(default_factory=frozenset)
    text_hidden: bool = False
    lesson: str | None = None

    def shows(self, control):
        return control not in self.hidden

    @property
    def text(self):
        return not self.text_hidden


def config_to_query(config, demo=False, profile=TRAIN, classroom=None):
    """The query parameters for a set-up: only what differs from the page's defaults (for its data
    set: the Playground's regression sets have their own number of points), then the lesson, no
    text, and the hidden controls (in the page's order)."""
    params = _setup_query(config, profile)
    if demo and profile.demo:
        params[DEMO.name] = DEMO.encode(True)
    if classroom is not None:
        if classroom.lesson and LESSON in profile.page_keys:
            params[LESSON] = classroom.lesson
        if classroom.text_hidden and TEXT_HIDE in profile.page_keys:
            params[TEXT_HIDE] = "1"
        params.update({profile.hide_key(name): "1" for name in profile.hidable if name in classroom.hidden})
    return params


def classroom_from_query(params, profile):
    """(Classroom, problems) from a link read on a page with this profile; a bad value is dropped
    with a message naming its key."""
    from .lessons import LESSONS  # the lessons' set-ups are read against the profiles themselves

    hidden, problems, lesson, text_hidden = set(), [], None, False
    for key, text in params.items():
        key = str(key)
        if key.endswith(HIDE_SUFFIX) and key[:-len(HIDE_SUFFIX)] in profile.hidable:
            try:
                if HIDE.parse(str(text)):
                    hidden.add(key[:-len(HIDE_SUFFIX)])
            except InputError:
                problems.append(f"{_short(key, 40)}: {_short(text, 40)!r} is not 1 (hide) or 0 (show)")
        elif key == TEXT_HIDE and key in profile.page_keys:
            try:
                text_hidden = HIDE.parse(str(text))
            except InputError:
                problems.append(f"{key}: {_short(text, 40)!r} is not 1 (no text) or 0")
        elif key == LESSON and key in profile.page_keys:
            if str(text) in LESSONS:
                lesson = str(text)
            else:
                problems.append(f"{key}: {_short(text, 40)!r} is not a lesson; lessons: {', '.join(LESSONS)}")
    return Classroom(frozenset(hidden), text_hidden, lesson), problems


def _classroom_key(key, profile):
    key = str(key)
    hides = key.endswith(HIDE_SUFFIX) and key[:-len(HIDE_SUFFIX)] in profile.hidable
    return hides or key in profile.page_keys


def classroom_link(config, classroom, profile, base=""):
    """The link of a set-up and a classroom's choices: `base` (the page's address, or nothing for
    a relative link) and the query, commas left as they are."""
    query = urllib.parse.urlencode(config_to_query(config, profile=profile, classroom=classroom), safe=",")
    return f"{base}?{query}" if query else base


def _setup_query(config, profile):
    on_dataset = profile.default_config(config.dataset if config.dataset in profile.datasets else None)
    default = dataclasses.replace(on_dataset, dataset=profile.default("dataset"))
    return {name: profile.setting(name).encode(getattr(config, name)) for name in profile.link_settings
            if getattr(config, name) != getattr(default, name)}


def describes_setup(params, profile=TRAIN):
    """Whether a link carries any set-up field (a bare link leaves the current set-up alone)."""
    return any(name in params for name in profile.link_settings)


def demo_from_query(params):
    """Whether a link asks for the demo view (a bad value: no)."""
    try:
        return DEMO.parse(params.get(DEMO.name, ""))
    except InputError:
        return False


def query_to_config(params, profile=TRAIN):
    """(config, demo, problems) from query parameters read on a page with this profile; problems
    lists 'field: why' for each key or value that was dropped (the page's default is used for it)."""
    values, problems = {}, []
    for key, text in params.items():
        if key == DEMO.name and profile.demo:
            continue
        if _classroom_key(key, profile):
            continue  # classroom_from_query reads it
        if key in SETTINGS and not SETTINGS[key].url:
            problems.append(f"{key}: a link cannot name a file on the server; upload your data on "
                            "the Data page instead")
            continue
        try:
            values[key] = profile.parse(key, str(text))
        except InputError as error:
            problems.append(f"{_short(error.field, 40)}: {error.message}")
    config = _combined(values, profile, problems)
    return config, profile.demo and demo_from_query(params), problems


def _combined(values, profile, problems):
    """The page's set-up with the link's values, each one that does not fit with the others (or
    past the memory budget) dropped with a message; the page's default set-up if that fails."""
    while True:
        try:
            config = profile.config(**values)
            size = nominal_size(config)
            if size is not None:
                config.check_memory(*size)  # a link must not set up training past the memory budget
            return config
        except InputError as error:  # a combination, e.g. layers that don't fit the task
            problems.append(f"{error.field}: {error.message}")
            if error.field not in values:  # e.g. the classes need other layers than the default
                problems.append(f"the set-up in the link was not used; {profile.title}'s is shown instead")
                return profile.default_config()
            values.pop(error.field)


_MARKDOWN = re.compile(r"([\\`*\[\]()<>!~|$])")


def plain(text):
    """Text a person supplied (a link, an upload's name), escaped so that Markdown in it shows as
    typed: no live link, image or HTML inside a message."""
    text = _MARKDOWN.sub(r"\\\1", str(text))
    return text.replace("://", ":\\/\\/").replace("www.", "www\\.")
