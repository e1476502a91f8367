"""Drive real Streamlit sessions over the browser's own websocket protocol.

Each `Session` opens `/_stcore/stream` like the browser does (subprotocol "streamlit",
same-origin Origin header), sends the `rerun_script` BackMsg the browser sends on load,
and reads the ForwardMsgs the server streams back: the `navigation` message gives the
pages and their script hashes, the deltas give the widgets (id, label, form, options),
and `script_finished` marks the end of a rerun. An interaction is what a user does:

- change the "Regions" multiselect or the "Period" date_input: a rerun when the widget
  is outside a form (the naive app); inside a form (the generated app) the browser
  keeps the value until the form is submitted, so nothing is sent and no rerun happens;
- press "Apply filters" (the form's submit button, or a plain button in the naive app);
- switch to the Activity page and back to Sales (a rerun with `page_script_hash`).

Latency is the time from sending the BackMsg to receiving `script_finished`. Widget
states are sent the way the browser sends them: every known widget's current value on
every rerun, triggers (buttons) only on the rerun they cause.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from ssl import SSLContext

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState, ContextInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

RERUN_TIMEOUT_S = 60.0
CYCLE = ("regions", "period", "submit", "page:Activity", "page:Sales")
REGION_CHOICES = ("North", "South", "East", "West")
PERIOD_DAYS = (30, 90, 180, 365)


class ProtocolError(RuntimeError):
    """The server did not answer the way a browser expects."""


@dataclass
class Widget:
    id: str
    kind: str
    label: str
    form_id: str


@dataclass
class Interaction:
    session: int
    index: int
    kind: str
    started: float  # time.monotonic() when the user acted
    latency_s: float | None  # None: no rerun (a form widget change stays in the browser)
    status: str = "ok"  # ok | error (an exception element) | timeout


@dataclass
class _Run:
    done: asyncio.Event = field(default_factory=asyncio.Event)
    status: int | None = None
    exceptions: int = 0


class Session:
    def __init__(
        self,
        port: int,
        number: int,
        seed: int,
        *,
        base_url: str | None = None,
        ssl: SSLContext | None = None,
        cookie: str | None = None,
    ) -> None:
        """A tab on http://127.0.0.1:port, or on `base_url` (https through a proxy, with its cookie)."""
        self.port = port
        self.base_url = base_url or f"http://127.0.0.1:{port}"
        self.ssl = ssl
        self.cookie = cookie
        self.number = number
        self.rng = random.Random(seed)
        self.pages: dict[str, str] = {}  # page name -> script hash
        self.page_hash = ""
        self.widgets: dict[str, Widget] = {}  # label -> widget on the current page
        self.values: dict[str, WidgetState] = {}  # widget id -> committed value
        self.pending: dict[str, WidgetState] = {}  # form widget id -> value not yet submitted
        self.bounds: tuple[date, date] | None = None
        self._ws: websockets.ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._run: _Run | None = None
        self.reruns = 0
        self.unexpected: list[str] = []

    # --- connection --------------------------------------------------------------
    @property
    def websocket(self) -> websockets.ClientConnection:
        """The open connection (its upgrade response, its state)."""
        if self._ws is None:
            raise ProtocolError("not connected")
        return self._ws

    async def open(self) -> float:
        """Connect and load the default page like a browser tab; returns the load latency."""
        self._ws = await websockets.connect(
            f"{self.base_url.replace('http', 'ws', 1)}/_stcore/stream",
            subprotocols=[websockets.Subprotocol("streamlit")],
            origin=websockets.Origin(self.base_url),
            additional_headers={"Cookie": self.cookie} if self.cookie else None,
            ssl=self.ssl,
            max_size=None,
            open_timeout=30,
            ping_interval=None,
        )
        self._reader = asyncio.create_task(self._read())
        return await self._rerun(page_hash="")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        assert self._ws is not None
        async for data in self._ws:
            if isinstance(data, str):
                raise ProtocolError("text frame from server")
            msg = ForwardMsg()
            msg.ParseFromString(data)
            self._handle(msg)

    def _handle(self, msg: ForwardMsg) -> None:
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self.page_hash = msg.new_session.page_script_hash or self.page_hash
        elif kind == "navigation":
            self.pages = {page.page_name: page.page_script_hash for page in msg.navigation.app_pages}
            self.page_hash = msg.navigation.page_script_hash or self.page_hash
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self._element(msg.delta.new_element)
        elif kind == "script_finished" and self._run is not None:
            if msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                self._run.status = msg.script_finished
                self._run.done.set()
        elif kind == "ref_hash":
            # Only sent for messages the client said it had cached; we never say so.
            self.unexpected.append("ref_hash")

    def _element(self, element) -> None:  # type: ignore[no-untyped-def]
        kind = element.WhichOneof("type")
        if kind == "exception" and self._run is not None:
            self._run.exceptions += 1
        elif kind in ("multiselect", "date_input", "button"):
            proto = getattr(element, kind)
            self.widgets[proto.label] = Widget(proto.id, kind, proto.label, proto.form_id)
            if kind == "date_input" and proto.min and proto.max:
                self.bounds = (date.fromisoformat(proto.min), date.fromisoformat(proto.max))

    # --- reruns ------------------------------------------------------------------
    async def _rerun(self, page_hash: str, trigger: WidgetState | None = None) -> float:
        """Send one rerun request and wait for its script_finished; returns the latency."""
        assert self._ws is not None
        state = ClientState(
            query_string="",
            page_script_hash=page_hash,
            context_info=ContextInfo(
                timezone="UTC",
                timezone_offset=0,
                locale="en-US",
                url=f"{self.base_url}/",
                is_embedded=False,
                color_scheme="light",
            ),
        )
        state.widget_states.widgets.extend(self.values.values())
        if trigger is not None:
            state.widget_states.widgets.append(trigger)
        self._run = run = _Run()
        started = time.perf_counter()
        await self._ws.send(BackMsg(rerun_script=state).SerializeToString())
        try:
            await asyncio.wait_for(run.done.wait(), RERUN_TIMEOUT_S)
        except TimeoutError:
            raise ProtocolError(f"no script_finished within {RERUN_TIMEOUT_S:.0f} s") from None
        latency = time.perf_counter() - started
        self.reruns += 1
        if run.exceptions or run.status != ForwardMsg.FINISHED_SUCCESSFULLY:
            raise ScriptError(latency)
        return latency

    async def rerun(self) -> float:
        """Rerun the current page with the same widget values (a cached rerun); the latency."""
        return await self._rerun(self.page_hash)

    def _widget(self, label: str) -> Widget:
        try:
            return self.widgets[label]
        except KeyError:
            raise ProtocolError(f"no widget {label!r} on the page (saw {sorted(self.widgets)})") from None

    async def _change(self, label: str, state: WidgetState) -> float | None:
        widget = self._widget(label)
        state.id = widget.id
        if widget.form_id:  # the browser holds form values until the form is submitted
            self.pending[widget.id] = state
            return None
        self.values[widget.id] = state
        return await self._rerun(self.page_hash)

    async def _switch(self, page: str) -> float:
        if page not in self.pages:
            raise ProtocolError(f"no page {page!r} in the navigation message ({sorted(self.pages)})")
        target = self.pages[page]
        # Widgets belong to a page: the browser drops the old page's state on navigation.
        self.widgets.clear()
        self.values.clear()
        self.pending.clear()
        self.page_hash = target
        return await self._rerun(target)

    async def act(self, kind: str) -> float | None:
        """Perform one user interaction; the rerun latency, or None when nothing is sent."""
        if kind == "regions":
            chosen = [r for r in REGION_CHOICES if self.rng.random() < 0.6] or [
                self.rng.choice(REGION_CHOICES)
            ]
            state = WidgetState()
            state.string_array_value.data.extend(chosen)
            return await self._change("Regions", state)
        if kind == "period":
            first, last = self.bounds or (date(2025, 1, 1), date(2025, 12, 31))
            start = max(first, last - timedelta(days=self.rng.choice(PERIOD_DAYS) - 1))
            state = WidgetState()
            state.string_array_value.data.extend([start.isoformat(), last.isoformat()])
            return await self._change("Period", state)
        if kind == "submit":
            button = self._widget("Apply filters")
            if button.form_id:
                self.values.update(self.pending)
                self.pending.clear()
            return await self._rerun(self.page_hash, WidgetState(id=button.id, trigger_value=True))
        if kind.startswith("page:"):
            return await self._switch(kind.removeprefix("page:"))
        raise ValueError(kind)


class ScriptError(ProtocolError):
    """The rerun finished with an exception element or an error status."""

    def __init__(self, latency: float) -> None:
        super().__init__("script error")
        self.latency = latency


async def run_session(
    port: int,
    number: int,
    interactions: int,
    think_s: tuple[float, float],
    seed: int,
    results: list[Interaction],
    start_delay: float = 0.0,
) -> Session:
    """One user: open the app, then `interactions` actions from CYCLE with think time between."""
    await asyncio.sleep(start_delay)
    session = Session(port, number, seed)
    started = time.monotonic()
    try:
        load = await session.open()
        results.append(Interaction(number, -1, "load", started, load))
    except ScriptError as error:
        results.append(Interaction(number, -1, "load", started, error.latency, "error"))
    try:
        for index in range(interactions):
            await asyncio.sleep(session.rng.uniform(*think_s))
            kind = CYCLE[index % len(CYCLE)]
            started = time.monotonic()
            try:
                latency = await session.act(kind)
                results.append(Interaction(number, index, kind, started, latency))
            except ScriptError as error:
                results.append(Interaction(number, index, kind, started, error.latency, "error"))
            except ProtocolError:
                results.append(Interaction(number, index, kind, started, None, "timeout"))
                raise
    finally:
        await session.close()
    return session


async def run_sessions(
    port: int,
    sessions: int,
    interactions: int,
    think_s: tuple[float, float],
    seed: int = 0,
    ramp_s: float = 1.0,
) -> tuple[list[Interaction], int]:
    """`sessions` concurrent users; returns every interaction and the number of reruns."""
    results: list[Interaction] = []
    tasks = [
        run_session(port, n, interactions, think_s, seed * 1000 + n, results, ramp_s * n / max(sessions, 1))
        for n in range(sessions)
    ]
    done = await asyncio.gather(*tasks, return_exceptions=True)
    reruns = 0
    for outcome in done:
        if isinstance(outcome, BaseException):
            print(f"  session failed: {type(outcome).__name__}: {outcome}", flush=True)
        else:
            reruns += outcome.reruns
    return results, reruns
