# ruff: noqa: E402  (sys.path is fixed before the imports, see below)
"""Time to the first answer: N concurrent /imagine commands through a local fake of the platform, each
answered by the real frontend after a real enqueue; p50/p99 from the platform's side (dispatch → the
callback's arrival). Target: p99 < 300 ms on SQLite and on Postgres (Discord allows 3 s).

    .venv/bin/python bench/ack_latency.py [--platform discord|slack|all] [--count 100]
                                          [--engines sqlite,postgres]

Beside each figure, the baseline of the same run: the same fake and client library answering at once
without touching the queue (what the platform round trip itself costs here).

Sections: one per platform, each a `bench_<platform>(url, count) -> (ours_s, baseline_s)` registered in
`PLATFORMS` (Discord below; Slack adds its own section and line).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the repo root: `bot`, `jobs`, `tests` importable

import argparse
import asyncio
import multiprocessing as mp
import statistics
import tempfile
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

from jobs.db import connect, migrate
from jobs.queue import Limits, Queue
from tests.jobs.databases import fresh_postgres_database, postgres_unreachable, sqlite_url

Latencies = list[float]
WARM_UP_COUNT = 10
# Side results of the last run, printed beside the figures:
DEFERRED: list[int] = []  # how many answers were "thinking…" first (the queue was busy)
ANSWERS: list[Latencies] = []  # dispatch → the message with the position (after a defer: its edit)
Bench = Callable[[str, int], Awaitable[tuple[Latencies, Latencies]]]
BENCH_LIMITS = Limits(max_queued_per_user=1000, max_running_per_user=1000, daily_quota_images=0)


async def queue_cleared(engine: Any) -> None:
    """Forget the warm-up's jobs, so the timed burst meets the same queue every time."""
    from sqlalchemy import delete

    from jobs.schema import jobs

    async with engine.begin() as conn:
        await conn.execute(delete(jobs))


def percentile(values: Latencies, fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


# --- Discord ------------------------------------------------------------------------------------------------


async def bench_discord(url: str, count: int) -> tuple[Latencies, Latencies]:
    """`count` users each send /imagine at once to an ImagineBot (real discord.py) via the fake Discord.

    The fake runs in its own process, as Discord runs on its own machines: its work is not the bot's."""
    import discord
    import yarl
    from discord import app_commands

    from bot.discord.client import ImagineBot
    from tests.fakes.discord_client import FAST_GUILD_READY_TIMEOUT_S, running

    class Baseline(discord.Client):
        def __init__(self) -> None:
            super().__init__(
                intents=discord.Intents(guilds=True), guild_ready_timeout=FAST_GUILD_READY_TIMEOUT_S
            )
            self.tree = app_commands.CommandTree(self)

            @self.tree.command()
            async def imagine(interaction: discord.Interaction, prompt: str) -> None:
                await interaction.response.send_message("ok")

    context = mp.get_context("spawn")
    here, there = context.Pipe()
    fake_process = context.Process(target=_discord_fake_process, args=(there, count), daemon=True)
    fake_process.start()
    there.close()  # the child's end: if the child dies, recv here ends with EOFError instead of waiting
    loop = asyncio.get_running_loop()
    engine = connect(url)
    queue = Queue(engine=engine, limits=BENCH_LIMITS)
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    try:
        api_base, gateway_url, token = await loop.run_in_executor(None, here.recv)
        discord.http.Route.BASE = api_base  # type: ignore[misc]
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
        await queue.worker_heartbeat("bench", device="cpu", model="none", batch_images=8)
        results = []
        bot = ImagineBot(queue=queue, sync_state_path=None, guild_ready_timeout=FAST_GUILD_READY_TIMEOUT_S)
        for client in (Baseline(), bot):
            async with running(client, token=token):
                here.send(("burst", WARM_UP_COUNT))  # first calls pay for imports and connections
                await loop.run_in_executor(None, here.recv)
                await queue_cleared(engine)
                here.send(("burst", count))
                latencies, answers, deferred, refused = await loop.run_in_executor(None, here.recv)
            results.append(latencies)
        ANSWERS.append(answers)
        if refused:
            raise RuntimeError(f"{refused} of the benchmark's /imagine were refused; fix the setup")
        DEFERRED.append(deferred)
        here.send("stop")
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved  # type: ignore[misc]
        await engine.dispose()
        fake_process.join(10)
        if fake_process.is_alive():
            fake_process.kill()
    baseline, ours = results
    return ours, baseline


def _discord_fake_process(conn: Connection, count: int) -> None:
    """The fake Discord, serving bursts of /imagine on request ("burst") until "stop"."""
    from tests.fakes.discord import FakeDiscord

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        async with FakeDiscord() as fake:
            users = [fake.add_user(f"user{index}") for index in range(count)]
            conn.send((fake.api_base, fake.gateway_url, fake.token))
            while (command := await loop.run_in_executor(None, conn.recv)) != "stop":
                _, size = command
                before = set(fake.interactions)
                sent = await asyncio.gather(
                    *(
                        fake.send_slash_command("imagine", {"prompt": f"a cat number {i}"}, user=user)
                        for i, user in enumerate(users[:size])
                    )
                )
                await asyncio.gather(*(fake.wait_for_callback(record, timeout=30) for record in sent))
                # let deferred answers finish before the client closes
                await fake.wait_for(lambda sent=sent: all(map(_answered(fake), sent)), timeout=60)
                deferred = sum(1 for r in sent if r.callback and r.callback["type"] == 5)
                new = {t for t in fake.interactions if t not in before}
                refused = sum(
                    1 for m in fake.messages.values() if m.is_ephemeral and m.interaction_token in new
                )
                conn.send(
                    ([r.ack_latency_s or 0.0 for r in sent], _answer_latencies(fake, sent), deferred, refused)
                )

    asyncio.run(serve())


def _answer_latencies(fake: Any, sent: list[Any]) -> Latencies:
    """Dispatch → the answer with the queue position: the callback itself, or the edit after a defer."""
    latencies = []
    for record in sent:
        answered_at = record.callback_at
        if record.callback and record.callback["type"] == 5:
            edits = fake.find_requests("PATCH", rf"/{record.token}/messages/@original$", answered=True)
            answered_at = edits[0].arrived_at if edits else answered_at
        latencies.append(answered_at - record.dispatched_at)
    return latencies


def _answered(fake: Any) -> Callable[[Any], bool]:
    def answered(record: Any) -> bool:
        message = fake.original_message(record)
        return message is not None and (not message.is_loading or message.is_deleted)

    return answered


# --- Slack --------------------------------------------------------------------------------------------------


async def bench_slack(url: str, count: int) -> tuple[Latencies, Latencies]:
    """`count` users each send a signed /imagine at once to the real Bolt app in HTTP mode; the fake Slack
    signs, POSTs and times them from its own process (bench/ack_latency_slack.py, runnable alone too)."""
    from bench import ack_latency_slack as slack

    ours, baseline = await slack.bench_slack(url, count)
    DEFERRED.append(slack.DEFERRED.pop())  # acked "adding your prompt…", the position on the response_url
    ANSWERS.append(slack.POSITION_AT.pop())
    return ours, baseline


PLATFORMS: dict[str, Bench] = {"discord": bench_discord, "slack": bench_slack}


# --- the run ------------------------------------------------------------------------------------------------


def run_one(platform: str, engine_name: str, count: int) -> None:
    bench = PLATFORMS[platform]
    if engine_name == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            url = sqlite_url(Path(directory) / "bench.db")
            migrate(url)
            ours, baseline = asyncio.run(bench(url, count))
    else:
        if reason := postgres_unreachable():
            print(f"{platform:8} {engine_name:9} skipped: {reason}")
            return
        with fresh_postgres_database("_ack") as url:
            migrate(url)
            ours, baseline = asyncio.run(bench(url, count))
    deferred = "" if not DEFERRED else f"  ({DEFERRED.pop()} deferred)"
    answers = ANSWERS.pop() if ANSWERS else []
    p50, p99 = percentile(ours, 0.50) * 1000, percentile(ours, 0.99) * 1000
    b50, b99 = percentile(baseline, 0.50) * 1000, percentile(baseline, 0.99) * 1000
    verdict = "ok" if p99 < 300 else "OVER TARGET"
    print(
        f"{platform:8} {engine_name:9} n={len(ours):4}  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
        f"mean {statistics.fmean(ours) * 1000:7.1f} ms  | baseline p50 {b50:6.1f} ms  p99 {b99:6.1f} ms  "
        f"| p99 target 300 ms: {verdict}{deferred}"
    )
    if answers:
        a50, a99 = percentile(answers, 0.50) * 1000, percentile(answers, 0.99) * 1000
        print(f"{'':8} {'':9} {'':6}  queue position shown: p50 {a50:7.1f} ms  p99 {a99:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--platform", default="all", choices=["all", "discord", "slack"])
    parser.add_argument("--count", type=int, default=100, help="concurrent /imagine commands (default 100)")
    parser.add_argument("--engines", default="sqlite,postgres")
    args = parser.parse_args()
    platforms = list(PLATFORMS) if args.platform == "all" else [args.platform]
    print(f"ack latency: {args.count} concurrent /imagine, dispatch → interaction callback")
    for platform in platforms:
        if platform not in PLATFORMS:
            print(f"{platform:8} no section in this file yet")
            continue
        for engine_name in args.engines.split(","):
            run_one(platform, engine_name.strip(), args.count)


if __name__ == "__main__":
    main()
