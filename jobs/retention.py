"""Retention: forget pictures and prompts past their age, keep every job row (the usage history).
Part of `Queue` (see `jobs/queue.py`); the statements are in `jobs/queries.py`.

    IMAGINE_RETENTION_IMAGES_DAYS=30    pictures (grid, images, VQGAN codes) of jobs created 30+ days ago go
    IMAGINE_RETENTION_PROMPTS_DAYS=90   prompts of jobs created 90+ days ago become "" (EXPIRED_PROMPT)
    0 (the default) keeps them forever.

Only finished jobs are touched (done, failed or cancelled, and no longer waiting for delivery), so nothing a
generator or a poster still needs disappears under it. The work goes in small batches, each its own short
transaction, so a SQLite generator writing beside it never waits long. The generator process runs it every
`RETENTION_INTERVAL_SECONDS` (its "retention" task); `imagine retention` runs it once.
A button pressed on an old message then finds no picture (a pick is refused, a variation fails saying the
picture is no longer stored), and a reroll of a forgotten prompt draws from the empty prompt: that is what
forgetting means.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobs import queries as q
from jobs.base import QueueBase
from jobs.base import now_or_utcnow as _now

log = logging.getLogger(__name__)

RETENTION_INTERVAL_SECONDS = 3600.0  # the generator applies retention this often (and once at start)
BATCH_JOBS = 500  # jobs per transaction


@dataclass(frozen=True)
class Retention:
    """How long pictures and prompts are kept; None keeps them forever."""

    images: timedelta | None = None
    prompts: timedelta | None = None

    @classmethod
    def from_days(cls, images_days: float, prompts_days: float) -> Retention:
        """From IMAGINE_RETENTION_IMAGES_DAYS / _PROMPTS_DAYS: 0 (or less) keeps forever."""

        def days(value: float) -> timedelta | None:
            return timedelta(days=value) if value > 0 else None

        return cls(days(images_days), days(prompts_days))

    @property
    def is_forever(self) -> bool:
        return self.images is None and self.prompts is None


@dataclass(frozen=True)
class Forgotten:
    images_deleted: int  # image rows (a job's grid and each picture count one each)
    prompts_blanked: int  # jobs whose prompt was blanked


class RetentionMixin(QueueBase):
    async def apply_retention(
        self, retention: Retention, *, now: datetime | None = None, batch: int = BATCH_JOBS
    ) -> Forgotten:
        """Delete pictures and blank prompts past `retention`; the jobs rows stay. Returns what went."""
        now = _now(now)
        images_deleted = prompts_blanked = 0
        if retention.images is not None:
            expired = q.finished_jobs_with_images(now - retention.images, batch)
            while True:
                async with self._engine.begin() as conn:
                    job_ids = list((await conn.execute(expired)).scalars())
                    if not job_ids:
                        break
                    images_deleted += (await conn.execute(q.delete_images_of(job_ids))).rowcount
        if retention.prompts is not None:
            expired = q.finished_jobs_with_prompts(now - retention.prompts, batch)
            while True:
                async with self._engine.begin() as conn:
                    job_ids = list((await conn.execute(expired)).scalars())
                    if not job_ids:
                        break
                    await conn.execute(q.blank_prompts(job_ids))
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
