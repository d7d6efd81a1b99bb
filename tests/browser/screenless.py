"""Streamlit sessions without a screen: what a browser tab sends and receives, without drawing.

A class of 16 students has 16 browsers on 16 machines and one server. On one 2-core machine, 16
Chromium tabs beside the server measure the tabs' own drawing more than the server: each tab's
Playground refresh costs its renderer ~165 ms of CPU, so 16 of them starve one another and the
server (bench_load --playground 16 with 16 tabs: 0.9 of a core for Chromium, maps at 0.2 Hz). A
screenless session loads the server as a tab does (one Streamlit session over the same websocket:
the page's first run, a button's click, each fragment's timed reruns at the interval the server
asks for, as Streamlit's frontend sends them) and reads every message the server sends, but draws
nothing. So a benchmark can keep one real tab, in the foreground, and the rest of the class as
sessions whose browsers are elsewhere.

It speaks Streamlit's own protocol (its BackMsg and ForwardMsg protobufs, from the installed
streamlit) with the `websockets` client that streamlit itself requires. Like the frontend, each
rerun carries every widget's value (a session's widgets are the page's, so the values come from a
template: what a real tab of the same page sent, `template_from`, each id matched by its key to the
session's own and some values replaced, e.g. its seed) and the hashes of the big messages it keeps,
which the server then sends as references.
"""

import asyncio
import threading
import time
from dataclasses import dataclass, field

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

CACHED_MESSAGES = 200  # per session, newest kept: the frontend keeps those of its last script runs


def template_from(payloads):
    """The widget states of the last timed rerun among a tab's sent websocket frames (bytes): every
    widget's value as that tab's frontend sends it. None if there is none yet."""
    for payload in reversed(payloads):
        if isinstance(payload, str):
            continue
        message = BackMsg()
        message.ParseFromString(payload)
        rerun = message.rerun_script
        if message.WhichOneof("type") == "rerun_script" and rerun.is_auto_rerun:
            return list(rerun.widget_states.widgets)
    return None


def _key(widget_id):
    """A widget's key, the end of its id (`$$ID-<hash>-<key>`); None for a widget without a key."""
    key = widget_id.rsplit("-", 1)[-1]
    return None if key == "None" else key


@dataclass
class Tally:
    """What one screenless session saw, counted as it arrives."""
    messages: int = 0  # ForwardMsgs from the server
    figures: dict = field(default_factory=dict)  # {widget key: figures received}, e.g. "pg_boundary"
    texts: list = field(default_factory=list)  # the last texts shown (markdown, alerts), newest last
    exceptions: list = field(default_factory=list)  # an exception element's message, if any
    closed: bool = False


def _element_text(element):
    kind = element.WhichOneof("type")
    if kind == "markdown":
        return element.markdown.body
    if kind == "alert":
        return element.alert.body
    if kind == "exception":
        return element.exception.message
    return None


class ScreenlessSession:
    """One session of `page` (its url path, e.g. "playground") with `query` (e.g. "seed=3")."""

    def __init__(self, url, page, query, template=(), values=None):
        self.template = list(template)  # WidgetStates a tab of the same page sent
        self.values = values or {}  # {widget key: WidgetState with the value to send instead}
        self.widget_ids = {}  # {key: this session's widget id}, from the elements the server sent
        self.cache = {}  # {hash: ForwardMsg}: the big messages kept, newest last
        self.ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.page = page
        self.query = query
        self.tally = Tally()
        self.buttons = {}  # {label: widget id}, from the elements the server sent
        self.intervals = {}  # {fragment id: asyncio task sending its timed reruns}
        self.socket = None
        self.page_hash = ""  # the page's script hash, from the server's navigation message
        self.ready_button = None  # a button of the page: its first run that drew it makes it ready

    def _widget_states(self):
        """The template's widget states with this session's ids and values (none before the page
        was drawn: a first run sends none either)."""
        if not self.widget_ids:
            return []
        states = []
        for widget in self.template:
            key = _key(widget.id)
            mine = WidgetState()
            mine.CopyFrom(self.values.get(key, widget))
            mine.id = self.widget_ids.get(key, widget.id)
            states.append(mine)
        return states

    def _rerun(self, extra=(), fragment_id="", auto=False):
        message = BackMsg()
        state = message.rerun_script
        state.query_string = self.query
        state.page_name = "" if self.page_hash else self.page
        state.page_script_hash = self.page_hash
        state.fragment_id = fragment_id
        state.is_auto_rerun = auto
        state.widget_states.widgets.extend(self._widget_states())
        state.widget_states.widgets.extend(extra)
        state.cached_message_hashes.extend(self.cache)
        return message.SerializeToString()

    async def run(self, ready):
        """Open the session and read until the socket closes; `ready` is set once a run that drew
        `ready_button` finished."""
        # compressed as a browser's messages are (permessage-deflate): the server pays for it alike
        async with websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None) as socket:
            self.socket = socket
            await socket.send(self._rerun())
            try:
                async for data in socket:
                    self._read(data, ready)
            except websockets.ConnectionClosed:
                pass
            finally:
                self.tally.closed = True
                for task in self.intervals.values():
                    task.cancel()

    def _read(self, data, ready):
        message = ForwardMsg()
        message.ParseFromString(data)
        self.tally.messages += 1
        if message.WhichOneof("type") == "ref_hash":  # a big message this session said it keeps
            if message.ref_hash not in self.cache:
                return
            cached = ForwardMsg()
            cached.CopyFrom(self.cache[message.ref_hash])
            cached.metadata.CopyFrom(message.metadata)
            message = cached
        elif message.metadata.cacheable:
            self.cache.pop(message.hash, None)
            self.cache[message.hash] = message
            while len(self.cache) > CACHED_MESSAGES:
                del self.cache[next(iter(self.cache))]
        kind = message.WhichOneof("type")
        if kind == "navigation":  # the page this run shows: later reruns stay on it, as a tab's do
            self.page_hash = message.navigation.page_script_hash
        elif kind == "script_finished":
            if self.ready_button in self.buttons:  # the page itself drawn (a first run may only route to it)
                ready.set()
        elif kind == "auto_rerun":
            self._every(message.auto_rerun.fragment_id, message.auto_rerun.interval)
        elif kind == "stop_auto_rerun":
            for fragment in message.stop_auto_rerun.fragment_ids:
                task = self.intervals.pop(fragment, None)
                if task:
                    task.cancel()
        elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
            element = message.delta.new_element
            which = element.WhichOneof("type")
            widget_id = getattr(getattr(element, which), "id", "") if which else ""
            if isinstance(widget_id, str) and widget_id.startswith("$$ID-"):
                self.widget_ids[_key(widget_id)] = widget_id
            if which == "button":
                self.buttons[element.button.label] = widget_id
            elif which == "component_instance":
                key = _key(widget_id)
                self.tally.figures[key] = self.tally.figures.get(key, 0) + 1
            text = _element_text(element)
            if text is not None:
                self.tally.texts = [*self.tally.texts[-40:], text]
                if which == "exception":
                    self.tally.exceptions.append(text)

    def _every(self, fragment_id, interval):
        """A fragment's timer, as the frontend's setInterval: a rerun of it every `interval` s."""
        old = self.intervals.pop(fragment_id, None)
        if old:
            old.cancel()

        async def tick():
            while True:
                await asyncio.sleep(interval)
                await self.socket.send(self._rerun(fragment_id=fragment_id, auto=True))
        self.intervals[fragment_id] = asyncio.get_running_loop().create_task(tick())

    async def press(self, label):
        """Click the button labelled `label` (a rerun with its trigger set, as the frontend sends)."""
        await self.socket.send(self._rerun([WidgetState(id=self.buttons[label], trigger_value=True)]))


class ScreenlessClass:
    """`count` screenless sessions of one page, served by one event loop on a thread of its own."""

    def __init__(self, url, page, queries, template=(), values=()):
        """`values`: per session, {widget key: WidgetState} to send instead of the template's."""
        values = list(values) or [{} for _ in queries]
        self.sessions = [ScreenlessSession(url, page, query, template, mine)
                         for query, mine in zip(queries, values, strict=True)]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="screenless-sessions", daemon=True)
        self.thread.start()
        self.tasks = []
        self.ready = []

    def _call(self, coroutine, timeout=120):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def open(self, button, timeout=180):
        """Open every session and wait until each one's page is drawn (has `button`) and that run
        finished."""
        async def start():
            for session in self.sessions:
                session.ready_button = button
                ready = asyncio.Event()
                self.ready.append(ready)
                self.tasks.append(asyncio.get_running_loop().create_task(session.run(ready)))

        async def all_ready():
            await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in self.ready)), timeout)
        self._call(start())
        self._call(all_ready(), timeout + 5)

    def press(self, label, timeout=60):
        """Click `label` in every session, once it has the button."""
        async def press_all():
            deadline = time.monotonic() + timeout
            for session in self.sessions:
                while label not in session.buttons:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no {label!r} button in session {session.query}: "
                                           f"{session.tally.texts[-3:]}")
                    await asyncio.sleep(0.1)
                await session.press(label)
        self._call(press_all(), timeout + 5)

    def close(self):
        """Close every websocket (the server ends or parks the sessions, as for a closed tab)."""
        async def close_all():
            for session in self.sessions:
                if session.socket is not None:
                    await session.socket.close()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        try:
            self._call(close_all(), 60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
