# ruff: noqa: E402  (sys.path is fixed before the imports, see below)
"""Queue throughput: claim + complete jobs/s through `jobs.queue`, beside raw SQL doing the same work.

    .venv/bin/python bench/queue.py [--jobs 2000] [--batch 8] [--engines sqlite,postgres] [--workers 1,4]

Each run: a fresh database (SQLite file in a temp dir; Postgres database created on the server named by
IMAGINE_TEST_POSTGRES_URL, default postgres@127.0.0.1:5432, and dropped after), `--jobs` queued 1-image
jobs, then W worker processes started together that claim `--batch` images at a time and complete them
(grid + 1 image stored) until the queue is empty. Variants:
  ours/batch  Queue.claim + Queue.finish_many (what a generator rendering a batch calls)
  ours/each   Queue.claim + Queue.finish per job
  raw         the same statements as plain SQL (sqlite3 / asyncpg): the baseline
"""

from __future__ import annotations

import sys
from pathlib import Path

# The repo root, not bench/: this file's name would shadow the stdlib's `queue` (aiosqlite imports it).
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import functools
import multiprocessing as mp
import os
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from jobs.db import connect, migrate
from jobs.queue import Queue, Rendered
from jobs.schema import jobs

ADMIN_URL = os.environ.get(
    "IMAGINE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
PNG = b"\x89PNG" + bytes(2000)  # about a small grid's size
TOKENS = bytes(512)


def _row(index: int, now: datetime) -> dict[str, object]:
    return {
        "kind": "imagine",
        "platform": "cli",
        "guild_id": "",
        "channel_id": "",
        "user_id": f"u{index % 10}",
        "user_name": "",
        "prompt": f"p{index}",
        "prompt_normalized": f"p{index}",
        "images": 1,
        "quota_images": 1,
        "seed": index,
        "guidance_scale": 10.0,
        "top_k": 256,
        "temperature": 1.0,
        "model": "",
        "status": "queued",
        "fair_tag": float(index),
        "attempts": 0,
        "run_after": now,
        "progress": 0.0,
        "cancel_requested": False,
        "created_at": now,
        "delivery": "pending",
        "delivery_attempts": 0,
        "delivery_failures": 0,
        "platform_refs": {},
    }


async def _fill(url: str, count: int) -> None:
    engine = connect(url)
    now = datetime.now(UTC) - timedelta(seconds=1)
    async with engine.begin() as conn:
        await conn.execute(jobs.insert(), [_row(index, now) for index in range(count)])
    await engine.dispose()


# --- workers (each in its own process) --------------------------------------------------------------------


async def _ours(url: str, worker_id: str, batch: int, each: bool) -> int:
    engine = connect(url)
    queue = Queue(engine=engine)
    done = 0
    while claimed := await queue.claim(worker_id, batch):
        if each:
            for job in claimed:
                await queue.finish(job.id, worker_id, grid_png=PNG, images=[(PNG, TOKENS)], gpu_seconds=0.0)
        else:
            await queue.finish_many(
                worker_id, [Rendered(job.id, PNG, [(PNG, TOKENS)], 0.0) for job in claimed]
            )
        done += len(claimed)
    await engine.dispose()
    return done


def _raw_sqlite(path: str, worker_id: str, batch: int) -> int:
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=30000")
    done = 0
    while True:
        now = datetime.now(UTC).replace(tzinfo=None)
        db.execute("BEGIN IMMEDIATE")
        ids = [
            row[0]
            for row in db.execute(
                "UPDATE jobs SET status='running', lease_owner=?, lease_expires_at=?, attempts=attempts+1,"
                " started_at=?, progress=0 WHERE id IN (SELECT id FROM jobs"
                " WHERE status='queued' AND run_after<=? ORDER BY fair_tag, id LIMIT ?) RETURNING id",
                (worker_id, str(now + timedelta(seconds=60)), str(now), str(now), batch),
            )
        ]
        db.execute("COMMIT")
        if not ids:
            return done
        marks = ",".join("?" * len(ids))
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            f"UPDATE jobs SET status='done', finished_at=?, progress=1, lease_owner=NULL,"
            f" lease_expires_at=NULL, delivery_next_try_at=? WHERE id IN ({marks}) AND lease_owner=?",
            (str(now), str(now), *ids, worker_id),
        )
        db.executemany(
            'INSERT INTO images (job_id, "index", png, tokens) VALUES (?, ?, ?, ?)',
            [(job_id, index, PNG, TOKENS) for job_id in ids for index in (-1, 0)],
        )
        db.execute("COMMIT")
        done += len(ids)


async def _raw_postgres(url: str, worker_id: str, batch: int) -> int:
    db = await asyncpg.connect(_dsn(url))
    done = 0
    while True:
        now = datetime.now(UTC)
        ids = [
            row["id"]
            for row in await db.fetch(
                "WITH c AS (SELECT id FROM jobs WHERE status='queued' AND run_after<=$4 ORDER BY fair_tag, id"
                " LIMIT $5 FOR UPDATE SKIP LOCKED) UPDATE jobs SET status='running', lease_owner=$1,"
                " lease_expires_at=$2, attempts=attempts+1, started_at=$3, progress=0"
                " WHERE id IN (SELECT id FROM c) RETURNING id",
                worker_id,
                now + timedelta(seconds=60),
                now,
                now,
                batch,
            )
        ]
        if not ids:
            await db.close()
            return done
        async with db.transaction():
            await db.execute(
                "UPDATE jobs SET status='done', finished_at=$1, progress=1, lease_owner=NULL,"
                " lease_expires_at=NULL, delivery_next_try_at=$1 WHERE id = ANY($2) AND lease_owner=$3",
                now,
                ids,
                worker_id,
            )
            await db.executemany(
                'INSERT INTO images (job_id, "index", png, tokens) VALUES ($1, $2, $3, $4)',
                [(job_id, index, PNG, TOKENS) for job_id in ids for index in (-1, 0)],
            )
        done += len(ids)


def _worker(variant: str, url: str, worker_id: str, batch: int, go: Any, out: Any) -> None:
    go.wait()
    if variant == "raw" and url.startswith("sqlite"):
        done = _raw_sqlite(make_url(url).database or "", worker_id, batch)
    elif variant == "raw":
        done = asyncio.run(_raw_postgres(url, worker_id, batch))
    else:
        done = asyncio.run(_ours(url, worker_id, batch, each=variant == "ours/each"))
    out.put(done)


def _run(variant: str, url: str, *, workers: int, jobs_count: int, batch: int) -> float:
    asyncio.run(_fill(url, jobs_count))
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    processes = [
        ctx.Process(target=_worker, args=(variant, url, f"w{n}", batch, go, out)) for n in range(workers)
    ]
    for process in processes:
        process.start()
    time.sleep(1.5)  # let every process import and connect before the clock starts
    start = time.perf_counter()
    go.set()
    done = sum(out.get(timeout=600) for _ in processes)
    elapsed = time.perf_counter() - start
    for process in processes:
        process.join()
    assert done == jobs_count, f"{variant}: {done} of {jobs_count} jobs completed"
    return jobs_count / elapsed


# --- databases ------------------------------------------------------------------------------------------


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(_dsn(ADMIN_URL), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _with_database(engine: str, body: Callable[[str], float]) -> float:
    if engine == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            migrate(url)
            return body(url)
    name = f"imagine_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        migrate(url)
        return body(url)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=8, help="images claimed at a time")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--workers", default="1,4")
    args = parser.parse_args()
    print(f"{args.jobs} one-image jobs, claim {args.batch} at a time; cpus={os.cpu_count()}")
    print(
        f"{'engine':9} {'workers':>7} {'raw SQL':>9} {'ours/batch':>11} {'ours/each':>10}"
        f" {'batch/raw':>9}  (jobs/s)"
    )
    for engine in args.engines.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            rates = {
                variant: _with_database(
                    engine,
                    functools.partial(_run, variant, workers=workers, jobs_count=args.jobs, batch=args.batch),
                )
                for variant in ("raw", "ours/batch", "ours/each")
            }
            print(
                f"{engine:9} {workers:>7} {rates['raw']:>9.0f} {rates['ours/batch']:>11.0f} "
                f"{rates['ours/each']:>10.0f} {rates['ours/batch'] / rates['raw']:>9.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
