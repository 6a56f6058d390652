# ruff: noqa: E402  (sys.path is fixed before the imports, see below)
"""The Slack section of bench/ack_latency.py: N concurrent signed /imagine commands, HTTP mode.

    .venv/bin/python bench/ack_latency.py --platform slack       (with the other platforms' sections)
    .venv/bin/python bench/ack_latency_slack.py [--count 100] [--engines sqlite,postgres]   (alone)

The real Bolt app (`bot.slack.app.build_app`) serves ``/slack/events`` on 127.0.0.1 in this process and
answers each command after a real enqueue (membership check, generator check, enqueue, ack with the
position and ETA). The fake Slack — Web API and the "Slack side" that signs and POSTs the commands —
runs in its own process, as Slack runs on its own machines; latency is measured there, from sending
the POST to reading the ack. Baseline, same run: a Bolt app on the same fake that acks at once.

An ack that had to be sent before the enqueue finished (`bot.slack.acks.ACK_DEADLINE_SECONDS`,
"adding your prompt…", the position following on the response_url) is counted as deferred.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the repo root: `bot`, `jobs`, `tests` importable

import asyncio
import multiprocessing as mp
import time
from multiprocessing.connection import Connection
from typing import Any

from jobs.db import connect
from jobs.queue import Limits, Queue

Latencies = list[float]
WARM_UP_COUNT = 10
SIGNING_SECRET = "bench-signing-secret"
BENCH_LIMITS = Limits(max_queued_per_user=1000, max_running_per_user=1000, daily_quota_images=0)
DEFERRED_MARK = "adding your prompt"
#: How many acks of the last `bench_slack` run were deferred, and when each user knew their position
#: (seconds from the burst's start); read by the caller's report line.
DEFERRED: list[int] = []
POSITION_AT: list[Latencies] = []


async def bench_slack(url: str, count: int) -> tuple[Latencies, Latencies]:
    """(ours, baseline): ack latencies of `count` concurrent /imagine, each from a different user."""
    from aiohttp import web
    from slack_bolt.async_app import AsyncAck, AsyncApp

    from bot.slack.admins import SlackAdmins
    from bot.slack.app import EVENTS_PATH, build_app
    from tests.fakes.slack_apps import web_client_for

    context = mp.get_context("spawn")
    here, there = context.Pipe()
    fake_process = context.Process(target=_slack_fake_process, args=(there, count), daemon=True)
    fake_process.start()
    loop = asyncio.get_running_loop()
    engine = connect(url)
    queue = Queue(engine=engine, limits=BENCH_LIMITS)
    try:
        fake_settings = await loop.run_in_executor(None, here.recv)
        client = web_client_for(_FakeAddress(**fake_settings))  # type: ignore[arg-type]
        await queue.worker_heartbeat("bench", device="cpu", model="none", batch_images=8)

        baseline_app = AsyncApp(client=client, signing_secret=SIGNING_SECRET)

        @baseline_app.command("/imagine")
        async def imagine(ack: AsyncAck) -> None:
            await ack(text="ok")

        ours_app = build_app(client=client, queue=queue, admins=SlackAdmins(), signing_secret=SIGNING_SECRET)
        results: list[Latencies] = []
        for app in (baseline_app, ours_app):
            runner = web.AppRunner(app.web_app(path=EVENTS_PATH), access_log=None, handle_signals=False)
            await runner.setup()
            try:
                await web.TCPSite(runner, "127.0.0.1", 0).start()
                events_url = f"http://127.0.0.1:{runner.addresses[0][1]}{EVENTS_PATH}"
                here.send(("burst", events_url, WARM_UP_COUNT))  # first calls pay for imports, connections
                await loop.run_in_executor(None, here.recv)
                await _listeners_done()
                await _queue_cleared(engine)
                here.send(("burst", events_url, count))
                latencies, texts, position_at = await loop.run_in_executor(None, here.recv)
                await _listeners_done()
            finally:
                await runner.cleanup()
            results.append(latencies)
        refused = [text for text in texts if "Queued" not in text and DEFERRED_MARK not in text]
        if refused:
            raise RuntimeError(f"{len(refused)} of the benchmark's /imagine were refused: {refused[0]!r}")
        DEFERRED.append(sum(1 for text in texts if DEFERRED_MARK in text))
        POSITION_AT.append(position_at)
        here.send(("stop",))
    finally:
        await engine.dispose()
        fake_process.join(10)
        if fake_process.is_alive():
            fake_process.kill()
    baseline, ours = results
    return ours, baseline


class _FakeAddress:
    """What `web_client_for` reads of a FakeSlack, sent over the pipe from the fake's process."""

    def __init__(self, *, bot_token: str, api_url: str) -> None:
        self.bot_token = bot_token
        self.api_url = api_url


async def _queue_cleared(engine: Any) -> None:
    """Forget the warm-up's jobs, so the timed burst meets the same queue every time."""
    from sqlalchemy import delete

    from jobs.schema import jobs

    async with engine.begin() as conn:
        await conn.execute(delete(jobs))


async def _listeners_done() -> None:
    """Let the listeners still posting placeholders after their ack finish before the next app."""
    current = asyncio.current_task()
    running = [
        task
        for task in asyncio.all_tasks()
        if task is not current and "run_ack_function_asynchronously" in repr(task.get_coro())
    ]
    if running:
        await asyncio.wait(running, timeout=60)


def _slack_fake_process(conn: Connection, count: int) -> None:
    """The fake Slack: serves the Web API, and on ("burst", url, n) POSTs n signed commands at once."""
    from tests.fakes.slack import RESPONSE_URL_STEP, FakeSlack
    from tests.fakes.slack_apps import SlackEventsDriver

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        async with FakeSlack() as fake:
            conn.send({"bot_token": fake.bot_token, "api_url": fake.api_url})
            while (request := await loop.run_in_executor(None, conn.recv))[0] == "burst":
                _, events_url, n = request
                driver = SlackEventsDriver(fake, events_url=events_url, signing_secret=SIGNING_SECRET)
                started = time.monotonic()
                try:
                    responses = await asyncio.gather(
                        *(
                            driver.send_slash_command(
                                "/imagine", f"a cat number {i}", user_id=f"U{i:05d}", channel_id="C0BENCH"
                            )
                            for i in range(n)
                        )
                    )
                finally:
                    await driver.aclose()
                bad = [r for r in responses if r.status != 200]
                if bad:
                    raise RuntimeError(f"{len(bad)} commands got HTTP {bad[0].status}: {bad[0].text[:200]}")
                # When each user knew their position: in the ack, or on the response_url after it.
                position_at = []
                for response in responses:
                    if DEFERRED_MARK not in response.text:
                        position_at.append(response.elapsed)
                        continue
                    url = fake.response_urls[response.response_url_id]
                    await fake.wait_until(lambda url=url: url.bodies, timeout=60, what="a deferred answer")
                    [call] = [
                        c
                        for c in fake.calls_to(RESPONSE_URL_STEP)
                        if c.args.get("response_url_id") == response.response_url_id
                    ]
                    position_at.append(call.at - started)
                conn.send(([r.elapsed for r in responses], [r.text for r in responses], position_at))

    asyncio.run(serve())


def main() -> None:
    """Run the Slack section alone, in bench/ack_latency.py's format."""
    import argparse
    import statistics
    import tempfile

    from jobs.db import migrate
    from tests.jobs.databases import fresh_postgres_database, postgres_unreachable, sqlite_url

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--engines", default="sqlite,postgres")
    args = parser.parse_args()
    print(f"ack latency: {args.count} concurrent /imagine, signed POST → Bolt's ack (HTTP mode)")
    for engine_name in args.engines.split(","):
        if engine_name == "sqlite":
            with tempfile.TemporaryDirectory() as directory:
                url = sqlite_url(Path(directory) / "bench.db")
                migrate(url)
                ours, baseline = asyncio.run(bench_slack(url, args.count))
        else:
            if reason := postgres_unreachable():
                print(f"slack    {engine_name:9} skipped: {reason}")
                continue
            with fresh_postgres_database("_ack") as url:
                migrate(url)
                ours, baseline = asyncio.run(bench_slack(url, args.count))
        p50, p99 = _percentile(ours, 0.50) * 1000, _percentile(ours, 0.99) * 1000
        b50, b99 = _percentile(baseline, 0.50) * 1000, _percentile(baseline, 0.99) * 1000
        print(
            f"slack    {engine_name:9} n={len(ours):4}  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  "
            f"mean {statistics.fmean(ours) * 1000:7.1f} ms  | baseline p50 {b50:6.1f} ms  p99 {b99:6.1f} ms  "
            f"| p99 target 300 ms: {'ok' if p99 < 300 else 'OVER TARGET'}  ({DEFERRED.pop()} deferred)"
        )
        known = POSITION_AT.pop()
        print(
            f"{'':18} position known (ack or response_url): p50 {_percentile(known, 0.5) * 1000:7.1f} ms"
            f"  p99 {_percentile(known, 0.99) * 1000:7.1f} ms  max {max(known) * 1000:7.1f} ms"
        )


def _percentile(values: Latencies, fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


if __name__ == "__main__":
    main()
