"""Retention: forget pictures and prompts past their age, keep every job row (the usage history).

    IMAGINE_RETENTION_IMAGES_DAYS=30    pictures (grid, images, VQGAN codes) of jobs created 30+ days ago go
    IMAGINE_RETENTION_PROMPTS_DAYS=90   prompts of jobs created 90+ days ago become "" (EXPIRED_PROMPT)
    0 (the default) keeps them forever.

Only finished jobs are touched (done, failed or cancelled, and no longer waiting for delivery), so nothing a
generator or a poster still needs disappears under it. The work goes in small batches, each its own short
transaction, so a SQLite generator writing beside it never waits long. The generator process runs it every
`RETENTION_INTERVAL_SECONDS` (its "retention" task); `apply_retention` is also callable on its own.
A button pressed on an old message then finds no picture (a pick is refused, a variation fails saying the
picture is no longer stored), and a reroll of a forgotten prompt draws from the empty prompt: that is what
forgetting means.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, select, update

from jobs.models import Delivery, Status
from jobs.schema import images, jobs

log = logging.getLogger(__name__)

RETENTION_INTERVAL_SECONDS = 3600.0  # the generator applies retention this often (and once at start)
BATCH_JOBS = 500  # jobs per transaction
EXPIRED_PROMPT = ""  # what a forgotten prompt reads as
FINISHED = (Status.DONE.value, Status.FAILED.value, Status.CANCELLED.value)


@dataclass(frozen=True)
class Retention:
    """How long pictures and prompts are kept; None keeps them forever."""

    images: timedelta | None = None
    prompts: timedelta | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> Retention:
        def days(value: float) -> timedelta | None:
            return timedelta(days=value) if value > 0 else None

        return cls(days(settings.retention_images_days), days(settings.retention_prompts_days))

    @property
    def is_forever(self) -> bool:
        return self.images is None and self.prompts is None


@dataclass(frozen=True)
class Forgotten:
    images_deleted: int  # image rows (a job's grid and each picture count one each)
    prompts_blanked: int  # jobs whose prompt was blanked


def _finished_before(cutoff: datetime) -> Any:
    return and_(
        jobs.c.created_at < cutoff,
        jobs.c.status.in_(FINISHED),
        jobs.c.delivery != Delivery.PENDING.value,
    )


async def apply_retention(
    engine: Any, retention: Retention, *, now: datetime | None = None, batch: int = BATCH_JOBS
) -> Forgotten:
    """Delete pictures and blank prompts past `retention`; the jobs rows stay. Returns what went."""
    now = now or datetime.now(UTC)
    images_deleted = prompts_blanked = 0
    if retention.images is not None:
        has_images = exists().where(images.c.job_id == jobs.c.id)
        expired = select(jobs.c.id).where(_finished_before(now - retention.images), has_images).limit(batch)
        while True:
            async with engine.begin() as conn:
                job_ids = (await conn.execute(expired)).scalars().all()
                if not job_ids:
                    break
                result = await conn.execute(delete(images).where(images.c.job_id.in_(job_ids)))
                images_deleted += result.rowcount
    if retention.prompts is not None:
        expired = (
            select(jobs.c.id)
            .where(
                _finished_before(now - retention.prompts),
                (jobs.c.prompt != EXPIRED_PROMPT) | (jobs.c.prompt_normalized != EXPIRED_PROMPT),
            )
            .limit(batch)
        )
        while True:
            async with engine.begin() as conn:
                job_ids = (await conn.execute(expired)).scalars().all()
                if not job_ids:
                    break
                await conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(job_ids))
                    .values(prompt=EXPIRED_PROMPT, prompt_normalized=EXPIRED_PROMPT)
                )
                prompts_blanked += len(job_ids)
    if images_deleted or prompts_blanked:
        log.info(
            "retention: %d pictures deleted, %d prompts blanked",
            images_deleted,
            prompts_blanked,
            extra={
                "action": "retention",
                "images_deleted": images_deleted,
                "prompts_blanked": prompts_blanked,
            },
        )
    return Forgotten(images_deleted, prompts_blanked)
