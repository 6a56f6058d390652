"""Builders for requests and rows, so each test states only what it is about."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.models import EnqueueRequest, utcnow
from jobs.schema import jobs

TOKENS = bytes(range(256)) * 2  # 256 uint16 codes


def request(prompt: str = "a cat in a hat", user: str = "alice", **overrides: Any) -> EnqueueRequest:
    values: dict[str, Any] = {
        "platform": "discord",
        "user_id": user,
        "user_name": user.title(),
        "guild_id": "g1",
        "channel_id": "c1",
        "prompt": prompt,
    }
    return EnqueueRequest(**{**values, **overrides})


def rendered(count: int) -> list[tuple[bytes, bytes]]:
    return [(b"\x89PNG image %d" % index, TOKENS) for index in range(count)]


def job_row(
    index: int, *, user: str = "alice", images: int = 1, now: datetime | None = None, **overrides: Any
) -> dict[str, Any]:
    """A queued `jobs` row for bulk inserts (concurrency tests and the bench)."""
    now = now or utcnow()
    row: dict[str, Any] = {
        "kind": "imagine",
        "parent_job_id": None,
        "image_index": None,
        "platform": "cli",
        "guild_id": "",
        "channel_id": "",
        "user_id": user,
        "user_name": user,
        "prompt": f"prompt {index}",
        "prompt_normalized": f"prompt {index}",
        "images": images,
        "quota_images": images,
        "seed": index,
        "guidance_scale": 10.0,
        "top_k": 256,
        "top_p": None,
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
    return {**row, **overrides}


async def insert_jobs(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        for start in range(0, len(rows), 500):
            await conn.execute(jobs.insert(), rows[start : start + 500])


async def count_jobs(engine: AsyncEngine) -> int:
    from sqlalchemy import func, select

    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(jobs))).scalar_one()
