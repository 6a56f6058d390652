"""Riding out a database that goes away for a while (Postgres restart, failover, a locked SQLite file).

The pool (`pool_pre_ping`) reconnects by itself; what the loops need is to not die on the one statement
that hit the dead connection. Two ways, one for each kind of work:

- `retrying(operation, ...)`: an operation that must happen (finish, fail, release, mark delivered) is
  re-run on connection-level errors with a doubling backoff, up to a deadline;
- `ride_out(exc, what)`: in a loop that tries again anyway (claim, heartbeat, registry, retention), a
  transient fault is logged once and the loop goes on; anything else is raised.

Other errors (bugs, constraint violations) pass through at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from jobs.db import is_transient

log = logging.getLogger(__name__)

T = TypeVar("T")

DB_RETRY_FIRST_SECONDS = 0.2  # first wait after a dropped connection; doubles up to the max
DB_RETRY_MAX_SECONDS = 5.0
DB_DEADLINE_SECONDS = 30.0  # ride out a database outage this long per operation that must happen


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


def ride_out(exc: BaseException, what: str, **log_extra: object) -> None:
    """In a loop that tries again anyway: log a transient database fault and return; raise anything else.

    except Exception as exc:
        ride_out(exc, "claim")      # the next pass claims again
    """
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
