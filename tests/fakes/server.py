"""What the fake platforms share: one aiohttp server on 127.0.0.1, a clock, a bounded wait, and fault
switches with the same names and meanings on `FakeSlack` and `FakeDiscord`.

    async with FakeSlack() as slack:            # start() on 127.0.0.1:0; .port, .base_url; close()
        slack.rate_limit("chat.postMessage", times=2, retry_after=1)
        ...
        await slack.wait_until(lambda: slack.messages, what="a message")

The switches (each arms one `Fault`; faults queue up in order and the first armed one matching a request
answers it; ``times=None`` keeps a fault until `clear_faults`):

- ``rate_limit(route, *, times=1, retry_after=…)``: HTTP 429 with ``Retry-After``, as the platform says it;
- ``server_error(route, *, times=1, status=500)``: a 5xx in the platform's error shape;
- ``fail(route, *, times=1, status=500, error=None, retry_after=None)``: any status, the platform's error
  body (``error``: its code or message in it);
- ``slow(route, seconds, *, times=1)``: the right answer, ``seconds`` late;
- ``clear_faults()``.

``route`` names the requests in the platform's terms: on Slack a Web API method (``chat.postMessage``),
``UPLOAD_STEP`` or ``"*"`` (any); on Discord a regex searched in the path after ``/api/v10``
(``r"^/webhooks/"``), optionally after an HTTP method and a space
(``r"PATCH ^/channels/\\d+/messages/\\d+$"``).
Each fake adds switches only it has (Slack's ``api_error``, Discord's ``expire_token``, …).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

from aiohttp import web

#: How long `FakeServer.wait_until` waits by default before failing the test, in seconds.
DEFAULT_WAIT_SECONDS = 5.0
#: How often `wait_until` re-checks its predicate when nothing in the fake changed: it also sees changes
#: in the client's own state, which the fake is not told about.
WAIT_TICK_SECONDS = 0.02

T = TypeVar("T")


@dataclass
class Fault:
    """How the next requests matching ``route`` misbehave. Armed by the `FakeServer` switches."""

    route: str  # in the fake's terms (see the module docstring)
    times: int | None  # how many more requests it answers; None: until `clear_faults`
    status: int | None = None  # None: the right answer, after `delay` (`slow`)
    body: Any = None  # the JSON answered with `status`
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering


@dataclass(frozen=True)
class Page:
    """A body that is not the platform's JSON: what a proxy or an overloaded edge answers (HTML, text)."""

    text: str
    content_type: str = "text/html"


BAD_GATEWAY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"


def consent_page(
    title: str, body: str, *, action: str, button: str, query: Mapping[str, str]
) -> web.Response:
    """A platform's OAuth consent screen: `body` (HTML) and one button that posts the authorize request's
    own query back to `action`, as the real screens do."""
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in query.items()
    )
    page = (
        f"<!doctype html><title>{html.escape(title)}</title>{body}"
        f'<form method="post" action="{action}">{hidden}<button type="submit">{button}</button></form>'
    )
    return web.Response(text=page, content_type="text/html")


class FakeServer:
    """The base of the platform fakes: lifecycle, clock, waiting, and the fault switches.

    A subclass builds its routes in `_build_app`, closes its long-lived connections in
    `_close_connections`, says how it shapes errors in `_error_body` and `_rate_limit_answer`, asks
    `_due_fault` how to answer each request, and calls `_notify` whenever its recorded state changes.
    """

    #: Names the fake in failure messages ("fake Slack: timed out …").
    name: ClassVar[str] = "server"
    #: ``retry_after`` of `rate_limit` when the test does not say (seconds).
    default_retry_after: ClassVar[float] = 1

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._clock_offset = 0.0
        self._faults: list[Fault] = []
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        raise NotImplementedError

    async def _close_connections(self) -> None:
        """Close websockets and cancel waiters before the server stops (nothing by default)."""

    async def start(self) -> Self:
        """Listen on 127.0.0.1 on a free port (`port`, `base_url`)."""
        self._runner = web.AppRunner(self._build_app(), handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        await self._close_connections()
        if self._runner is not None:
            for site in self._runner.sites:
                await site.stop()
            await asyncio.sleep(0.05)  # an accept under way registers its connection in a few loop turns
            server = self._runner.server
            transports = [c.transport for c in server.connections if c.transport] if server else []
            await self._runner.cleanup()
            # aiohttp's shutdown close()s each connection, which waits to flush what it still has to send;
            # with a client that went away or stopped reading, the socket outlives this test's loop and
            # its ResourceWarning is raised as an error at a later test's garbage collection
            for transport in transports:
                transport.abort()
            await asyncio.sleep(0)  # abort closes the socket on the next loop turn
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- the clock ------------------------------------------------------------------------------------

    def now(self) -> float:
        """Seconds on the fake's clock; `advance_clock` moves it (tokens and URLs age without waiting)."""
        return self._clock() + self._clock_offset

    def advance_clock(self, seconds: float) -> None:
        self._clock_offset += seconds

    # -- waiting --------------------------------------------------------------------------------------

    def _notify(self) -> None:
        """Wake every `wait_until`: something the fake records changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(
        self, predicate: Callable[[], T | None], *, timeout: float = DEFAULT_WAIT_SECONDS, what: str = ""
    ) -> T:
        """Wait, at most ``timeout`` seconds, until ``predicate()`` is truthy; return its value.

        It is re-checked after every change in the fake and every `WAIT_TICK_SECONDS`; on timeout the
        test fails with an AssertionError that says what it waited for.
        """

        async def until() -> T:
            while not (value := predicate()):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), WAIT_TICK_SECONDS)
            return value

        try:
            return await asyncio.wait_for(until(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"fake {self.name}: timed out after {timeout}s waiting for {what or predicate}"
            ) from None

    # -- fault switches -------------------------------------------------------------------------------

    def rate_limit(self, route: str, *, times: int | None = 1, retry_after: float | None = None) -> None:
        """Answer the next ``times`` requests to ``route`` with 429 and ``Retry-After``, in the platform's
        words (``retry_after`` seconds; `default_retry_after` if not given)."""
        seconds = self.default_retry_after if retry_after is None else retry_after
        body, headers = self._rate_limit_answer(seconds)
        self._arm(Fault(route, times, status=429, body=body, headers=headers))

    def server_error(self, route: str, *, times: int | None = 1, status: int = 500) -> None:
        """Answer the next ``times`` requests to ``route`` with a server error (``status``)."""
        self.fail(route, times=times, status=status)

    def fail(
        self,
        route: str,
        *,
        times: int | None = 1,
        status: int = 500,
        error: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``times`` requests to ``route`` with ``status`` and the platform's error body.

        ``error`` is the platform's error code or message in that body (None: its usual one for a failure),
        ``retry_after`` adds a ``Retry-After`` header (seconds).
        """
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        self._arm(Fault(route, times, status=status, body=self._error_body(status, error), headers=headers))

    def fail_with_page(
        self,
        route: str,
        *,
        times: int | None = 1,
        status: int = 502,
        text: str = BAD_GATEWAY_PAGE,
        content_type: str = "text/html",
    ) -> None:
        """Answer the next ``times`` requests to ``route`` with ``status`` and a body that is not JSON."""
        self._arm(Fault(route, times, status=status, body=Page(text, content_type)))

    def slow(self, route: str, seconds: float, *, times: int | None = 1) -> None:
        """Answer the next ``times`` requests to ``route`` correctly, but only after ``seconds``."""
        self._arm(Fault(route, times, delay=seconds))

    def clear_faults(self) -> None:
        self._faults.clear()

    def _arm(self, fault: Fault) -> None:
        self._faults.append(fault)

    def _error_body(self, status: int, error: str | None) -> Any:
        """The JSON the platform answers a failure with."""
        raise NotImplementedError

    def _rate_limit_answer(self, retry_after: float) -> tuple[Any, dict[str, str]]:
        """The JSON body and the headers of the platform's 429."""
        raise NotImplementedError

    async def _due_fault(self, *matchers: Callable[[Fault], bool]) -> Fault | None:
        """Take the first armed fault a matcher accepts (earlier matchers first) and sleep for its delay
        (the fake's own latency, not a test wait). Return it if it answers in the fake's place with an
        error; None if the request is to be answered normally."""
        fault = self._take_fault(*matchers)
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        return fault if fault.status is not None else None

    def _take_fault(self, *matchers: Callable[[Fault], bool]) -> Fault | None:
        for matches in matchers:
            for fault in self._faults:
                if matches(fault):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None
