"""The generator as a child process of `imagine serve` and `imagine "prompt"` (this process never imports
torch), and the signals that stop both."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

CHILD_STOP_SECONDS = 9.0  # a generator child asked to stop gets this long, then SIGKILL (its leases expire)


def generator_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "generator.serve", *extra]


async def stop_child(child: asyncio.subprocess.Process, *, seconds: float = CHILD_STOP_SECONDS) -> int:
    """SIGTERM, then SIGKILL if it is still there after `seconds`; returns its exit status.

    The generator stops in less (its render grace, then posting what finished); a killed one loses no job:
    what it held goes back to the queue when its leases expire."""
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(child.wait(), seconds)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
    return child.returncode if child.returncode is not None else -1


@dataclass
class Stop:
    """Set by the first SIGTERM or SIGINT (`signal_name` says which); a second one makes it `hurried`."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    hurried: asyncio.Event = field(default_factory=asyncio.Event)
    signal_name: str = ""


@contextlib.asynccontextmanager
async def stop_on_signals(who: str, *, doing: str = "stopping") -> AsyncIterator[Stop]:
    """Handle SIGTERM and SIGINT while the block runs: the first sets `Stop.event` and says so once, on
    stderr (`imagine serve: SIGTERM: stopping …`); the next one sets `Stop.hurried`."""
    stop = Stop()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.event.is_set():
            if not stop.hurried.is_set():
                print(f"{who}: {name} again: stopping now", file=sys.stderr, flush=True)
            stop.hurried.set()
            return
        stop.signal_name = name
        print(f"{who}: {name}: {doing}", file=sys.stderr, flush=True)
        stop.event.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield stop
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
