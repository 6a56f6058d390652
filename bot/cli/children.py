"""The generator as a child process of `imagine serve` and `imagine "prompt"` (this process never imports
torch), and the signals that stop both."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator

from jobs.settings import Settings

CHILD_STOP_SECONDS = 15.0  # a generator child asked to stop gets this long (plus one lease) before SIGKILL


def generator_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "generator.serve", *extra]


async def stop_child(child: asyncio.subprocess.Process, settings: Settings) -> int:
    """SIGTERM, then SIGKILL if it outlives its lease; returns its exit status."""
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(child.wait(), CHILD_STOP_SECONDS + settings.lease_seconds)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
    return child.returncode if child.returncode is not None else -1


@contextlib.asynccontextmanager
async def stop_on_signals() -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        yield stop
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
