"""The queue by hand and the operator's commands: migrate, enqueue, status, cancel, usage, retention,
dashboard. No torch import.

    imagine migrate                          bring the database to the code's schema
    imagine enqueue "a cat" --images 4       queue a prompt; prints the job id, position and ETA
    imagine status JOB_ID                    a job's state
    imagine cancel JOB_ID                    cancel it
    imagine fetch JOB_ID [--image N]         write a finished job's grid (or one image) to a file
    imagine usage [--by user] [--days 7]     usage table
    imagine retention [--images-days D]      apply retention now (generators do it hourly)
    imagine dashboard [--host H] [--port P]  serve the admin web dashboard on its own (bot/web/)
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.cli.arguments import days, image_number, job_id, retention_days, terminal_user
from bot.cli.draw import check_writable, write_picture
from bot.cli.registry import command
from jobs.db import migrate
from jobs.durations import duration
from jobs.errors import JobFailed, UsageError
from jobs.models import GRID_INDEX, EnqueueRequest, Platform, Status, UsageFilter
from jobs.options import add_option_arguments, options_from_arguments
from jobs.queue import Queue
from jobs.reports import GROUPS
from jobs.retention import Retention
from jobs.settings import Settings


def _eta(eta: timedelta | None) -> str:
    return "unknown (no recent renders)" if eta is None else f"about {duration(eta)}"


@command("migrate", "create or upgrade the database schema (safe to run again)")
async def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    await asyncio.to_thread(migrate, settings.db_url)
    print("database is at the latest schema")
    return 0


def _enqueue_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="what to draw")
    add_option_arguments(parser)
    parser.add_argument("--user", default=terminal_user(), help="who asks (default: your login name)")


@command("enqueue", "queue a prompt and print its position and ETA", _enqueue_arguments)
async def run_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    options = options_from_arguments(args)
    queue = await Queue.open(settings)
    try:
        enqueued = await queue.enqueue(
            EnqueueRequest(
                platform=Platform.CLI,
                user_id=args.user,
                user_name=args.user,
                prompt=args.prompt,
                options=options,
            )
        )
    finally:
        await queue.close()
    job = enqueued.job
    print(
        f"job {job.id} queued: position {enqueued.position}, ETA {_eta(enqueued.eta)}, "
        f"seed {job.options.seed}"
    )
    return 0


def _job_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", type=job_id)


@command("status", "show a job", _job_id_argument)
async def run_status(args: argparse.Namespace, settings: Settings) -> int:
    queue = await Queue.open(settings)
    try:
        job = await queue.get_job(args.job_id)
        position, eta = await queue.position(job.id)
    finally:
        await queue.close()
    print(f"job {job.id}: {job.status}" + (f" ({job.error})" if job.error else ""))
    print(f"  prompt: {job.prompt_normalized!r} by {job.user_name or job.user_id} on {job.platform}")
    print(
        f"  images {job.images}, seed {job.options.seed}, attempts {job.attempts}, "
        f"progress {job.progress:.0%}"
    )
    if position:
        print(f"  position {position}, ETA {_eta(eta)}")
    print(f"  delivery: {job.delivery}" + (f" ({job.delivery_error})" if job.delivery_error else ""))
    return 0


def _cancel_arguments(parser: argparse.ArgumentParser) -> None:
    _job_id_argument(parser)
    parser.add_argument("--user", default=terminal_user(), help="who asks (default: your login name)")
    parser.add_argument("--admin", action="store_true", help="cancel someone else's job")


@command("cancel", "cancel a job (yours, or any with --admin)", _cancel_arguments)
async def run_cancel(args: argparse.Namespace, settings: Settings) -> int:
    queue = await Queue.open(settings)
    try:
        job = await queue.cancel(args.job_id, args.user, is_admin=args.admin)
    finally:
        await queue.close()
    print(f"job {job.id}: {job.status}" + (" (cancel requested)" if job.cancel_requested else ""))
    return 0


def _fetch_arguments(parser: argparse.ArgumentParser) -> None:
    _job_id_argument(parser)
    parser.add_argument("--out", type=Path, default=Path("grid.png"), help="where to write it (grid.png)")
    parser.add_argument(
        "--image", type=image_number, default=None, help="one image, 1 to 9, instead of the grid (U1…U9)"
    )


@command("fetch", "write a finished job's grid, or one of its images, to a PNG file", _fetch_arguments)
async def run_fetch(args: argparse.Namespace, settings: Settings) -> int:
    check_writable(args.out)
    queue = await Queue.open(settings)
    try:
        job = await queue.get_job(args.job_id)
        index = GRID_INDEX if args.image is None else args.image - 1
        if job.status is not Status.DONE:
            raise JobFailed(f"job {job.id} has no pictures: it is {job.status}")
        if index >= job.images:
            raise UsageError(f"job {job.id} has images 1 to {job.images}, not {args.image}")
        if index not in await queue.image_indices(job.id):
            raise JobFailed(f"job {job.id}'s pictures are no longer stored (retention deleted them)")
        picture = await queue.image(job.id, index)
    finally:
        await queue.close()
    write_picture(args.out, picture.png, job_id=job.id)
    print(f"wrote {args.out} (job {job.id}, {'the grid' if args.image is None else f'image {args.image}'})")
    return 0


def _usage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", choices=GROUPS, default="user")
    parser.add_argument("--days", type=days, default=7.0, help="look back this many days (default 7)")
    for name in ("platform", "guild", "channel", "user", "model"):
        parser.add_argument(f"--{name}", help=f"only this {name}")


@command("usage", "jobs, images, failures, wait/render times and GPU-seconds per group", _usage_arguments)
async def run_usage(args: argparse.Namespace, settings: Settings) -> int:
    queue = await Queue.open(settings)
    filters = UsageFilter(
        platform=args.platform,
        guild_id=args.guild,
        channel_id=args.channel,
        user_id=args.user,
        model=args.model,
        since=datetime.now(UTC) - timedelta(days=args.days),
    )
    try:
        rows = await queue.usage(by=args.by, filters=filters)
    finally:
        await queue.close()

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    print(
        f"{args.by:24} {'jobs':>6} {'images':>6} {'failed':>6} {'cancel':>6} {'wait':>6} {'p95':>6} "
        f"{'render':>6} {'p95':>6} {'gpu s':>8}"
    )
    for row in rows:
        print(
            f"{row.label[:24]:24} {row.jobs:>6} {row.images:>6} {row.failures:>6} {row.cancellations:>6} "
            f"{seconds(row.mean_wait_s):>6} {seconds(row.p95_wait_s):>6} {seconds(row.mean_render_s):>6} "
            f"{seconds(row.p95_render_s):>6} {row.gpu_seconds:>8.1f}"
        )
    if not rows:
        print("(no jobs)")
    return 0


def _dashboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", help="overrides IMAGINE_DASHBOARD_HOST (default: 127.0.0.1, this machine only)"
    )
    parser.add_argument("--port", type=int, help="overrides IMAGINE_DASHBOARD_PORT (default: 8080)")


@command(
    "dashboard",
    "serve the admin web dashboard until Ctrl-C (needs IMAGINE_DASHBOARD_PASSWORD; `serve` starts it too "
    "when IMAGINE_DASHBOARD_ENABLED=true)",
    _dashboard_arguments,
    is_long_running=True,
)
async def run_dashboard_command(args: argparse.Namespace, settings: Settings) -> int:
    from bot.web.config import DashboardConfig
    from bot.web.server import run_dashboard

    overrides = {
        name: value for name, value in (("host", args.host), ("port", args.port)) if value is not None
    }
    config = DashboardConfig.from_settings(settings, **overrides)
    queue = await Queue.open(settings)
    try:
        await queue.check_writable()  # bans and settings are written from it
        async with run_dashboard(settings, queue, config=config) as url:
            print(f"imagine: admin dashboard on {url} (Ctrl-C stops it)", flush=True)
            await asyncio.Event().wait()  # until Ctrl-C cancels this
    finally:
        await queue.close()
    return 0


def _retention_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images-days", type=retention_days, help="overrides IMAGINE_RETENTION_IMAGES_DAYS")
    parser.add_argument(
        "--prompts-days", type=retention_days, help="overrides IMAGINE_RETENTION_PROMPTS_DAYS"
    )


@command(
    "retention",
    "delete pictures and blank prompts of finished jobs older than the retention settings, now "
    "(generators do it hourly; usage rows stay)",
    _retention_arguments,
)
async def run_retention(args: argparse.Namespace, settings: Settings) -> int:
    retention = Retention.from_days(
        settings.retention_images_days if args.images_days is None else args.images_days,
        settings.retention_prompts_days if args.prompts_days is None else args.prompts_days,
    )
    if retention.is_forever:
        print("retention is off (IMAGINE_RETENTION_IMAGES_DAYS and IMAGINE_RETENTION_PROMPTS_DAYS are 0)")
        return 0
    queue = await Queue.open(settings)
    try:
        gone = await queue.apply_retention(retention)
    finally:
        await queue.close()
    print(f"{gone.images_deleted} pictures deleted, {gone.prompts_blanked} prompts blanked")
    return 0
