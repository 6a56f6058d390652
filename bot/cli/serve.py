"""`imagine serve`: migrates if needed, starts the generator (a child process: this one never imports torch)
and every frontend whose credentials are configured (`bot/frontends.py`), and runs until SIGTERM/SIGINT.
`imagine serve --no-render` is the bot machine of a deployment whose GPU generators run elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from bot.cli.children import generator_command, stop_child, stop_on_signals
from bot.cli.registry import command
from jobs.db import ensure_migrated
from jobs.queue import Queue
from jobs.settings import Settings


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
    """Generator child + configured frontends until a signal; the generator's failure ends it all.

    `render=False` (`imagine serve --no-render`): the child only delivers, as on a bot machine whose GPU
    generators run elsewhere (docker-compose.yml)."""
    from bot.frontends import enabled_frontends

    if await ensure_migrated(settings.db_url):
        print("imagine serve: database migrated to the current schema", file=sys.stderr)
    frontends = enabled_frontends(settings)
    queue = Queue.connect(settings)
    child = await asyncio.create_subprocess_exec(*generator_command(*([] if render else ["--no-render"])))
    try:
        async with stop_on_signals() as stop, contextlib.AsyncExitStack() as stack:
            for frontend in frontends:
                try:
                    run = frontend.load()
                    await stack.enter_async_context(run(settings, queue))
                except Exception as exc:
                    print(
                        f"imagine serve: the {frontend.name} frontend is configured but cannot start: "
                        f"{type(exc).__name__}: {exc}",
                        file=sys.stderr,
                    )
                    return 2
                print(f"imagine serve: {frontend.name} started", file=sys.stderr)
            if not frontends:
                print(
                    "imagine serve: no frontend configured (Discord, Slack, dashboard); the generator runs: "
                    'draw with `imagine "a prompt"`',
                    file=sys.stderr,
                )
            child_exit = asyncio.create_task(child.wait())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait([child_exit, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if child.returncode is not None:
                print(f"imagine serve: the generator exited ({child.returncode}); stopping", file=sys.stderr)
                return child.returncode or 1
        return await stop_child(child, settings)
    finally:
        await stop_child(child, settings)
        await queue.close()
