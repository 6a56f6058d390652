"""`imagine "a prompt" [--images N] [--seed S] [--out grid.png]`: the product from a terminal, on embedded
defaults. It migrates the database if needed, enqueues the prompt (platform `cli`), waits with a live queue
position and progress bar, and writes the grid PNG. If no generator has been seen lately, it starts one
(`python -m generator.serve`, a child process) for the duration, so one command draws a picture on a fresh
machine.

`imagine upscale JOB_ID INDEX [--out upscaled.png]` does the same for one picture of a finished job (INDEX
counts from 1, as the grid's buttons do): a 4× larger PNG through the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from bot.cli.arguments import image_number, job_id, terminal_user
from bot.cli.children import generator_command, stop_child, stop_on_signals
from bot.cli.registry import command
from jobs.db import ensure_migrated
from jobs.durations import duration
from jobs.errors import EXIT_INTERRUPTED, JobFailed, OutputNotWritable
from jobs.hints import command_hint
from jobs.models import GRID_INDEX, EnqueueRequest, Job, Kind, Platform, Status
from jobs.options import add_option_arguments, options_from_arguments
from jobs.queue import Queue
from jobs.settings import Settings

WAIT_POLL_SECONDS = 0.5  # how often the CLI looks at its job
BAR_WIDTH = 30


def _render_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt")
    add_option_arguments(parser)
    _output_arguments(parser, Path("grid.png"), "the grid")


def _upscale_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", type=job_id, help="a finished job")
    parser.add_argument("index", type=image_number, help="which of its pictures, from 1")
    _output_arguments(parser, Path("upscaled.png"), "the picture")


def _output_arguments(parser: argparse.ArgumentParser, out: Path, what: str) -> None:
    parser.add_argument("--out", type=Path, default=out, help=f"where to write {what} ({out})")
    parser.add_argument("--no-generator", action="store_true", help="never start a generator; only wait")


@command("render", "draw one prompt and write the grid PNG (the default command)", _render_arguments)
async def run_render(args: argparse.Namespace, settings: Settings) -> int:
    request = _terminal_request(prompt=args.prompt, options=options_from_arguments(args))
    return await _draw_from_terminal(request, args, settings)


@command("upscale", "upscale one picture of a finished job 4× and write the PNG", _upscale_arguments)
async def run_upscale(args: argparse.Namespace, settings: Settings) -> int:
    request = _terminal_request(
        prompt="", kind=Kind.UPSCALE, parent_job_id=args.job_id, image_index=args.index - 1
    )
    return await _draw_from_terminal(request, args, settings)


def _terminal_request(**fields: Any) -> EnqueueRequest:
    """A job from this terminal: platform `cli`, its user, and this machine as the channel."""
    user = terminal_user()
    return EnqueueRequest(
        platform=Platform.CLI.value, user_id=user, user_name=user, channel_id=socket.gethostname(), **fields
    )


async def _draw_from_terminal(request: EnqueueRequest, args: argparse.Namespace, settings: Settings) -> int:
    check_writable(args.out)  # before anything is drawn: a picture never waits on a path that cannot take it
    await ensure_migrated(settings.db_url)
    return await draw(request, settings, out=args.out, is_generator_allowed=not args.no_generator)


async def draw(request: EnqueueRequest, settings: Settings, *, out: Path, is_generator_allowed: bool) -> int:
    """Enqueue, wait (starting a generator if none is alive) and write the job's picture to `out`."""
    queue = Queue.connect(settings)
    helper = GeneratorHelper(queue, settings, is_allowed=is_generator_allowed)
    try:
        job = (await queue.enqueue(request)).job
        if job.kind is Kind.UPSCALE:
            print(
                f"job {job.id}: upscale of job {job.parent_job_id} picture {(request.image_index or 0) + 1}",
                file=sys.stderr,
            )
        else:
            print(f"job {job.id}: {job.images} image(s), seed {job.options.seed}", file=sys.stderr)
        stays = f"stopping: job {job.id} stays queued (`{command_hint('imagine')} status {job.id}`)"
        async with stop_on_signals("imagine", doing=stays) as stop:
            ended = await wait_for_job(queue, job.id, helper, stop.event)
        if ended is None:
            return helper.exit_status() or EXIT_INTERRUPTED
        if ended.status is not Status.DONE:
            raise JobFailed(f"job {ended.id} {ended.status}: {ended.error or 'no reason given'}")
        grid = await queue.image(ended.id, GRID_INDEX)
        write_picture(out, grid.png, job_id=ended.id)
        seconds = ended.render_time.total_seconds() if ended.render_time else 0.0
        if ended.kind is Kind.UPSCALE:  # one picture made larger: no seed or image count of its own
            picture = (ended.image_index or 0) + 1
            done = f"job {ended.parent_job_id} picture {picture} 4× larger, job {ended.id}, {seconds:.1f} s"
        else:
            done = f"{ended.images} image(s), job {ended.id}, seed {ended.options.seed}, {seconds:.1f} s"
        print(f"wrote {out} ({done})")
        return 0
    finally:
        await helper.stop()
        await queue.close()


def check_writable(path: Path) -> None:
    """Refuse an output path that cannot be written (its directory is made if it does not exist)."""
    if path.is_dir():
        raise OutputNotWritable(f"--out {path} is a directory: name a file, e.g. {path / 'grid.png'}")
    in_the_way = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if in_the_way is not None:
        raise OutputNotWritable(f"cannot write --out {path}: {in_the_way} is a file, not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".imagine-", suffix=".probe"):
            pass
    except OSError as exc:
        raise OutputNotWritable(f"cannot write --out {path}: {exc.strerror or exc}") from exc


def write_picture(path: Path, png: bytes, *, job_id: int) -> None:
    """Write `png` to `path` whole or not at all; if it cannot be written, say where it can be fetched."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(png)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise OutputNotWritable(
            f"could not write {path}: {exc.strerror or exc}; the picture is stored with job {job_id}: "
            f"`{command_hint('imagine')} fetch {job_id} --out another.png`"
        ) from exc


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
        if await self.queue.workers_alive():
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
            await stop_child(self.child)


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
                ("\n" if is_tty and shown else "")
                + f"imagine: the generator stopped (exit {helper.exit_status()}); job {job_id} stays queued",
                file=sys.stderr,
            )
            return None
        if stop.is_set():  # the signal handler said what happens to the job
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WAIT_POLL_SECONDS)
