"""`imagine "a prompt" [--images N] [--seed S] [--out grid.png]`: the product from a terminal, on embedded
defaults. It migrates the database if needed, enqueues the prompt (platform `cli`), waits with a live queue
position and progress bar, and writes the grid PNG. If no generator has been seen lately, it starts one
(`python -m generator.serve`, a child process) for the duration, so one command draws a picture on a fresh
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import socket
import sys
from pathlib import Path

from bot.cli.children import generator_command, stop_child, stop_on_signals
from bot.cli.registry import command
from jobs.db import ensure_migrated
from jobs.durations import duration
from jobs.errors import ImagineError, Refused
from jobs.models import GRID_INDEX, EnqueueRequest, Job, Platform, Status
from jobs.options import add_option_arguments, options_from_arguments
from jobs.queue import Queue
from jobs.settings import Settings

WAIT_POLL_SECONDS = 0.5  # how often the CLI looks at its job
WORKER_ALIVE_HEARTBEATS = 3  # a generator seen within this many heartbeat intervals counts as running
BAR_WIDTH = 30


def _render_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt")
    add_option_arguments(parser)
    parser.add_argument(
        "--out", type=Path, default=Path("grid.png"), help="where to write the grid (grid.png)"
    )
    parser.add_argument("--no-generator", action="store_true", help="never start a generator; only wait")


@command("render", "draw one prompt and write the grid PNG (the default command)", _render_arguments)
async def run_render(args: argparse.Namespace, settings: Settings) -> int:
    await ensure_migrated(settings.db_url)
    options = options_from_arguments(args)
    queue = Queue.connect(settings)
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
            ended = await wait_for_job(queue, job.id, helper, stop)
        if ended is None:
            return helper.exit_status() or 130
        job = ended
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
        await queue.close()


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
            line = f"queued: position {position}" + (f", ready in about {duration(eta)}" if eta else "")
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
