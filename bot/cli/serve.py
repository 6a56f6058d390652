"""`imagine serve`: migrates if needed, starts the generator (a child process: this one never imports torch)
and every frontend whose credentials are configured (`bot/frontends.py`), and runs until SIGTERM/SIGINT.
`imagine serve --no-render` is the bot machine of a deployment whose GPU generators run elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from asyncio.subprocess import Process

from bot.cli.children import CHILD_STOP_SECONDS, Stop, generator_command, stop_child, stop_on_signals
from bot.cli.registry import command
from bot.frontends import Frontend
from jobs.db import ensure_migrated
from jobs.errors import ImagineError, one_line
from jobs.hints import command_hint
from jobs.queue import Queue
from jobs.settings import Settings

FRONTEND_STOP_SECONDS = 5.0  # closing the frontends may take this long (they close while the child stops)
CLOSE_SECONDS = 2.0
STOP_SECONDS = CHILD_STOP_SECONDS + 1.0  # the bound on the whole tree's stop after one signal


class FrontendFailed(ImagineError):
    """A frontend whose credentials are configured could not start; the message says which and why."""

    exit_status = 2


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-render",
        action="store_true",
        help="the generator child only delivers; GPU generators (python -m generator.serve) render elsewhere",
    )


@command(
    "serve",
    "run the whole product: generator + configured frontends",
    _serve_arguments,
    is_long_running=True,
)
async def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    return await serve(settings, render=not args.no_render)


async def serve(settings: Settings, *, render: bool = True) -> int:
    """Generator child + configured frontends until a signal; the generator's exit ends it all.

    One SIGTERM or Ctrl-C stops the whole tree within `STOP_SECONDS`, whatever each frontend is doing
    (logging in, retrying a connection, serving): the frontends are cancelled and closed while the child
    finishes or releases its jobs and posts what finished; a child still there after its share is killed
    (its leases expire, no job is lost). A second signal stops at once.

    `render=False` (`imagine serve --no-render`): the child only delivers, as on a bot machine whose GPU
    generators run elsewhere (docker-compose.yml)."""
    from bot.frontends import enabled_frontends

    frontends = enabled_frontends(settings)  # refuses a half-configured frontend before anything starts
    if await ensure_migrated(settings.db_url):
        print("imagine serve: database migrated to the current schema", file=sys.stderr)
    queue = Queue.connect(settings)
    try:
        await queue.check_writable()
    except BaseException:
        await queue.close()
        raise
    child = await asyncio.create_subprocess_exec(*generator_command(*([] if render else ["--no-render"])))
    try:
        doing = "stopping (frontends close; the generator finishes or releases its jobs, then posts)"
        async with stop_on_signals("imagine serve", doing=doing) as stop:
            serving = asyncio.create_task(_run(settings, queue, frontends, child), name="frontends")
            signalled = asyncio.create_task(stop.event.wait())
            await asyncio.wait({serving, signalled}, return_when=asyncio.FIRST_COMPLETED)
            signalled.cancel()
            if not serving.done():
                serving.cancel()
            return await _stop(serving, child, stop)
    finally:
        if child.returncode is None:
            await stop_child(child)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(queue.close(), CLOSE_SECONDS)


async def _run(settings: Settings, queue: Queue, frontends: list[Frontend], child: Process) -> int:
    """Start every frontend, then serve until the generator child exits; returns the status to exit with."""
    async with contextlib.AsyncExitStack() as stack:
        for frontend in frontends:
            try:
                run = frontend.load()
                await stack.enter_async_context(run(settings, queue))
            except asyncio.CancelledError:
                raise
            except ImagineError:
                raise
            except Exception as exc:
                raise FrontendFailed(
                    f"the {frontend.name} frontend is configured but cannot start: {type(exc).__name__}: "
                    f"{one_line(exc)}"
                ) from exc
            print(f"imagine serve: {frontend.name} started", file=sys.stderr)
        if not frontends:
            print(
                "imagine serve: no frontend configured (Discord, Slack, dashboard); the generator runs: "
                f'draw with `{command_hint("imagine")} "a prompt"`',
                file=sys.stderr,
            )
        status = await child.wait()
        print(f"imagine serve: the generator exited ({status}); stopping", file=sys.stderr)
        return status or 1


async def _stop(serving: asyncio.Task[int], child: Process, stop: Stop) -> int:
    """Close the frontends and stop the child, at the same time and within `STOP_SECONDS`; the status to
    exit with: 0 after a signal (the child stopped cleanly), else what ended the serving."""
    closing = asyncio.ensure_future(asyncio.wait({serving}, timeout=FRONTEND_STOP_SECONDS))
    stopping = asyncio.ensure_future(stop_child(child))
    hurried = asyncio.ensure_future(stop.hurried.wait())
    await asyncio.wait({stopping, hurried}, return_when=asyncio.FIRST_COMPLETED)
    if not stopping.done():  # a second signal: no more waiting
        with contextlib.suppress(ProcessLookupError):
            child.kill()
    status = await stopping
    hurried.cancel()
    await closing
    if not serving.done():
        print(
            f"imagine serve: a frontend did not close in {FRONTEND_STOP_SECONDS:g} s; left", file=sys.stderr
        )
        return status
    error = None if serving.cancelled() else serving.exception()
    if error is not None:
        raise error
    if stop.event.is_set():
        return 0 if status in (0, -signal.SIGTERM) else status
    return serving.result()
