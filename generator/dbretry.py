"""Riding out a database that goes away for a while (Postgres restart, failover, a locked SQLite file).

The pool (`pool_pre_ping`) reconnects by itself; what the loops need is to not die on the one statement
that hit the dead connection. Two ways, one for each kind of work:

- `retrying(operation, ...)`: an operation that must happen (finish, fail, release, mark delivered) is
  re-run on connection-level errors with a doubling backoff, up to a deadline;
- `Outages.ride_out(exc, what)`: in a loop that tries again anyway (claim, heartbeat, registry,
  retention), a transient fault is logged and the loop goes on. A permanent one (read-only, disk full,
  the schema gone: `jobs.faults.is_permanent`) is ridden out only for `PERMANENT_FAULT_SECONDS`: then it
  is raised as `DatabaseUnavailable`, the task dies and the generator exits with that one line, instead
  of warning every second forever.

Other errors (bugs, constraint violations) pass through at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from jobs.errors import DatabaseUnavailable
from jobs.faults import is_permanent, is_transient

log = logging.getLogger(__name__)

T = TypeVar("T")

DB_RETRY_FIRST_SECONDS = 0.2  # first wait after a dropped connection; doubles up to the max
DB_RETRY_MAX_SECONDS = 5.0
DB_DEADLINE_SECONDS = 30.0  # ride out a database outage this long per operation that must happen
PERMANENT_FAULT_SECONDS = 10.0  # a fault that cannot pass (read-only, disk full) is given this long


async def retrying(
    operation: Callable[[], Awaitable[T]], *, what: str, deadline_seconds: float, **log_extra: object
) -> T:
    """Run `operation`, retrying transient database errors for up to `deadline_seconds`."""
    give_up_at = time.monotonic() + deadline_seconds
    wait = DB_RETRY_FIRST_SECONDS
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + wait > give_up_at:
                raise
            log.warning(
                "database unavailable during %s, retrying in %.1f s: %s",
                what,
                wait,
                _first_line(exc),
                extra={"action": "db_retry", **log_extra},
            )
            await asyncio.sleep(wait)
            wait = min(DB_RETRY_MAX_SECONDS, wait * 2)


class Outages:
    """The permanent database faults a loop has been riding out, by what it was doing."""

    def __init__(
        self,
        *,
        describe: Callable[[BaseException], DatabaseUnavailable | None],
        limit_seconds: float = PERMANENT_FAULT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._describe = describe  # Queue.fault: the one line for the process's database
        self._limit_seconds = limit_seconds
        self._clock = clock
        self._streaks: dict[str, tuple[float, float]] = {}  # what → (first, last) failure

    def ride_out(self, exc: BaseException, what: str, **log_extra: object) -> None:
        """Log a fault the next pass may clear and return; raise anything else.

        except Exception as exc:
            self.outages.ride_out(exc, "claim")      # the next pass claims again
        """
        now = self._clock()
        if is_permanent(exc):
            first, last = self._streaks.get(what, (now, -float("inf")))
            if now - last > self._limit_seconds:  # an old streak that ended: this one starts now
                first = now
            self._streaks[what] = (first, now)
            if now - first >= self._limit_seconds:
                raise self._describe(exc) or exc
            if first == now:  # once per streak: the process either recovers or stops with one line
                log.warning(
                    "%s: the database refuses this (stopping in %.0f s unless it clears): %s",
                    what,
                    self._limit_seconds,
                    _first_line(exc),
                    extra={"action": "db_retry", **log_extra},
                )
            return
        if not is_transient(exc):
            raise exc
        log.warning(
            "%s: database unavailable, trying again: %s",
            what,
            _first_line(exc),
            extra={"action": "db_retry", **log_extra},
        )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
