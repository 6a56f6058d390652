"""`imagine "a prompt"` and `imagine serve`: the product from a terminal, on embedded defaults.

`imagine "prompt" [--images N] [--seed S] [--out grid.png]` migrates the database if needed, enqueues the
prompt (platform `cli`), waits with a live queue position and progress bar, and writes the grid PNG. If no
generator has been seen lately, it starts one (`python -m generator.serve`, a child process) for the
duration, so one command draws a picture on a fresh machine.

`imagine serve` migrates if needed, starts the generator (a child process: this one never imports torch)
and every frontend whose credentials are configured (`bot/frontends.py`), and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from jobs.db import connect, current_revision, head_revision, migrate_async
from jobs.errors import ImagineError, Refused, SettingsError
from jobs.logs import configure_from_settings
from jobs.models import GRID_INDEX, EnqueueRequest, Job, Platform, Status
from jobs.queue import Queue
from jobs.settings import Settings, load_settings

log = logging.getLogger(__name__)

WAIT_POLL_SECONDS = 0.5  # how often the CLI looks at its job
WORKER_ALIVE_HEARTBEATS = 3  # a generator seen within this many heartbeat intervals counts as running
CHILD_STOP_SECONDS = 15.0  # a generator child asked to stop gets this long (plus one lease) before SIGKILL
BAR_WIDTH = 30


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `render` and `serve` to the `imagine` command's subparsers (bot/cli.py)."""
    render = commands.add_parser(
        "render", help="draw one prompt and write the grid PNG (the default command)"
    )
    render.add_argument("prompt")
    render.add_argument("--images", type=int, default=4, help="1 to 9 (default 4)")
    render.add_argument(
        "--seed", type=int, default=None, help="fixed seed: the same prompt draws the same grid"
    )
    render.add_argument(
        "--out", type=Path, default=Path("grid.png"), help="where to write the grid (grid.png)"
    )
    render.add_argument("--guidance-scale", type=float, default=None)
    render.add_argument("--top-k", type=int, default=None)
    render.add_argument("--top-p", type=float, default=None)
    render.add_argument("--temperature", type=float, default=None)
    render.add_argument("--no-generator", action="store_true", help="never start a generator; only wait")
    render.set_defaults(run=render_command)
    serve = commands.add_parser("serve", help="run the whole product: generator + configured frontends")
    serve.add_argument(
        "--no-render",
        action="store_true",
        help="the generator child only delivers; GPU generators (python -m generator.serve) render elsewhere",
    )
    serve.set_defaults(run=serve_command)


# --- shared ----------------------------------------------------------------------------------------------


async def ensure_migrated(url: str) -> bool:
    """Bring the database to the code's schema; True if it migrated."""
    engine = connect(url)
    try:
        if await current_revision(engine) == head_revision():
            return False
    finally:
        await engine.dispose()
    await migrate_async(url)
    return True


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


# --- imagine "prompt" ------------------------------------------------------------------------------------


def render_command(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(render(settings, args))


async def render(settings: Settings, args: argparse.Namespace) -> int:
    await ensure_migrated(settings.db_url)
    options = {"images": args.images, "seed": args.seed}
    for name in ("guidance_scale", "top_k", "top_p", "temperature"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    engine = connect(settings)
    queue = Queue.from_settings(settings, engine=engine)
    helper = GeneratorHelper(queue, settings, is_allowed=not args.no_generator)
    try:
        user = _terminal_user()
        try:
            enqueued = await queue.enqueue(
                EnqueueRequest(
                    platform=Platform.CLI.value,
                    user_id=user,
                    user_name=user,
                    prompt=args.prompt,
                    channel_id=socket.gethostname(),
                    options=options,
                )
            )
        except Refused as exc:
            print(f"imagine: {exc.reason}", file=sys.stderr)
            return 1
        job = enqueued.job
        print(f"job {job.id}: {job.images} image(s), seed {job.options.seed}", file=sys.stderr)
        async with stop_on_signals() as stop:
            job = await wait_for_job(queue, job.id, helper, stop)
        if job is None:
            return helper.exit_status() or 130
        if job.status is not Status.DONE:
            print(f"imagine: job {job.id} {job.status}: {job.error or 'no reason given'}", file=sys.stderr)
            return 1
        grid = await queue.image(job.id, GRID_INDEX)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(grid.png)
        seconds = job.render_time.total_seconds() if job.render_time else 0.0
        done = f"{job.images} image(s), job {job.id}, seed {job.options.seed}, {seconds:.1f} s"
        print(f"wrote {args.out} ({done})")
        return 0
    except ImagineError as exc:
        print(f"imagine: {exc}", file=sys.stderr)
        return 1
    finally:
        await helper.stop()
        await engine.dispose()


class GeneratorHelper:
    """Starts a generator child when the CLI's job waits and no generator is alive (checked at start
    and then every heartbeat interval, so a generator that dies meanwhile is replaced)."""

    def __init__(self, queue: Queue, settings: Settings, *, is_allowed: bool) -> None:
        self.queue = queue
        self.settings = settings
        self.is_allowed = is_allowed
        self.child: asyncio.subprocess.Process | None = None
        self._checked_at = -float("inf")

    @property
    def has_failed(self) -> bool:
        return self.child is not None and self.child.returncode is not None

    def exit_status(self) -> int | None:
        return self.child.returncode if self.child is not None else None

    async def ensure(self) -> None:
        loop = asyncio.get_running_loop()
        if not self.is_allowed or self.child is not None or loop.time() - self._checked_at < self._interval():
            return
        self._checked_at = loop.time()
        if await self.queue.workers_online(
            within_seconds=WORKER_ALIVE_HEARTBEATS * self.settings.heartbeat_seconds
        ):
            return
        print("no generator running: starting one for this command (loading the model)", file=sys.stderr)
        env = {**os.environ}
        env.setdefault("IMAGINE_LOG_LEVEL", "WARNING")
        worker_id = f"cli-{socket.gethostname()}:{os.getpid()}"
        self.child = await asyncio.create_subprocess_exec(
            *generator_command("--worker-id", worker_id), env=env
        )

    def _interval(self) -> float:
        return self.settings.heartbeat_seconds

    async def stop(self) -> None:
        if self.child is not None:
            await stop_child(self.child, self.settings)


async def wait_for_job(queue: Queue, job_id: int, helper: GeneratorHelper, stop: asyncio.Event) -> Job | None:
    """Show the position, then a progress bar, until the job is over; None if interrupted or the
    generator child stopped (the job stays queued: nothing is lost)."""
    is_tty = sys.stderr.isatty()
    shown = ""
    while True:
        job = await queue.get_job(job_id)
        if job.status in (Status.DONE, Status.FAILED, Status.CANCELLED):
            if is_tty and shown:
                print(file=sys.stderr)
            return job
        if job.status is Status.QUEUED:
            await helper.ensure()
            position, eta = await queue.position(job_id)
            line = f"queued: position {position}" + (
                f", ready in about {_seconds(eta.total_seconds())}" if eta else ""
            )
        else:
            done = int(job.progress * BAR_WIDTH)
            line = f"drawing [{'#' * done}{'.' * (BAR_WIDTH - done)}] {job.progress:4.0%}"
        if line != shown:
            print(
                ("\r" + line.ljust(60)) if is_tty else line,
                end="" if is_tty else "\n",
                file=sys.stderr,
                flush=True,
            )
            shown = line
        if helper.has_failed:
            print(
                f"\nimagine: the generator stopped (exit {helper.exit_status()}); job {job_id} stays queued",
                file=sys.stderr,
            )
            return None
        if stop.is_set():
            print(f"\nimagine: interrupted; job {job_id} stays in the queue", file=sys.stderr)
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WAIT_POLL_SECONDS)


def _terminal_user() -> str:
    """Who asks, for fairness and quotas: the login name (a container may have none)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


# --- imagine serve ---------------------------------------------------------------------------------------


def serve_command(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(serve(settings, render=not getattr(args, "no_render", False)))


async def serve(settings: Settings, *, render: bool = True) -> int:
    """Generator child + configured frontends until a signal; the generator's failure ends it all.

    `render=False` (`imagine serve --no-render`): the child only delivers, as on a bot machine whose GPU
    generators run elsewhere (docker-compose.yml)."""
    from bot.frontends import enabled_frontends

    if await ensure_migrated(settings.db_url):
        print("imagine serve: database migrated to the current schema", file=sys.stderr)
    frontends = enabled_frontends(settings)
    engine = connect(settings)
    queue = Queue.from_settings(settings, engine=engine)
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
        await engine.dispose()


# --- entry point -----------------------------------------------------------------------------------------


def prompt_is_default(argv: list[str], commands: set[str]) -> list[str]:
    """`imagine "a prompt" …` means `imagine render "a prompt" …`."""
    if argv and argv[0] not in commands and not argv[0].startswith("-"):
        return ["render", *argv]
    return argv


def main(argv: list[str] | None = None) -> int:
    """`python -m bot.imagine` (bot/cli.py's `imagine` delegates `render` and `serve` here)."""
    parser = argparse.ArgumentParser(prog="imagine", description="Draw pictures with DALL·E mini.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_commands(commands)
    args = parser.parse_args(prompt_is_default(sys.argv[1:] if argv is None else argv, set(commands.choices)))
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"imagine: {exc}", file=sys.stderr)
        return 2
    # the terminal shows progress; log lines only for problems (serve: the generator child logs in full)
    level = (
        settings.log_level
        if args.command == "serve"
        else max(logging.WARNING, logging.getLevelName(settings.log_level))
    )
    configure_from_settings(settings, level=level)
    return int(args.run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
