"""A stand-in generator for the concurrency tests, run as a real process:

    python -m tests.jobs.worker_process URL WORKER_ID MODE LEASE_SECONDS [GO_FILE]

MODE `drain`: claim (4 images at a time) and finish until nothing is claimable, reaping expired leases
when idle, until no job is queued or running; prints {"claimed": [...]} at the end.
MODE `hold`: claim 4 images' worth, print {"claimed": [...]}, then hang (the test SIGKILLs it).
Waits for GO_FILE to exist before claiming, so all workers start together.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from jobs.db import connect
from jobs.queue import Limits, Queue
from jobs.schema import jobs

BATCH_IMAGES = 4


async def main(url: str, worker_id: str, mode: str, lease_seconds: float, go_file: str | None) -> None:
    engine = connect(url)
    queue = Queue(engine=engine, limits=Limits(max_attempts=2, lease_seconds=lease_seconds))
    print(json.dumps({"ready": worker_id}), flush=True)
    while go_file and not Path(go_file).exists():
        await asyncio.sleep(0.01)
    claimed: list[int] = []
    if mode == "hold":
        claimed = [job.id for job in await queue.claim(worker_id, BATCH_IMAGES)]
        print(json.dumps({"claimed": claimed}), flush=True)
        await asyncio.sleep(3600)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        batch = await queue.claim(worker_id, BATCH_IMAGES)
        for job in batch:
            claimed.append(job.id)
            images = [(b"png %d" % job.id, b"\x00" * 512)] * job.images
            await queue.finish(job.id, worker_id, grid_png=b"grid", images=images, gpu_seconds=0.001)
        if not batch:
            await queue.reap()
            async with engine.connect() as conn:
                active = (
                    await conn.execute(select(func.count()).where(jobs.c.status.in_(("queued", "running"))))
                ).scalar_one()
            if not active:
                break
            await asyncio.sleep(0.05)
    print(json.dumps({"claimed": claimed}), flush=True)
    await engine.dispose()


if __name__ == "__main__":
    url_arg, worker_arg, mode_arg, lease_arg = sys.argv[1:5]
    asyncio.run(
        main(url_arg, worker_arg, mode_arg, float(lease_arg), sys.argv[5] if len(sys.argv) > 5 else None)
    )
