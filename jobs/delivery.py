"""Delivery bookkeeping: finished jobs wait to be posted to their chat, then delivered or
undeliverable. Part of `Queue` (see `jobs/queue.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from jobs import queries as q
from jobs.base import QueueBase
from jobs.base import now_or_utcnow as _now
from jobs.models import Delivery, Job, require_aware

DELIVERY_HOLD_SECONDS = 60.0  # a deliverer has this long to post before another may try
DELIVERY_BACKOFF_SECONDS = 5.0
DELIVERY_BACKOFF_MAX_SECONDS = 600.0
REF_COLUMNS = (
    "interaction_token",
    "interaction_created_at",
    "response_url",
    "placeholder_message_id",
    "final_message_id",
)


class DeliveryMixin(QueueBase):
    """Posting results back: which finished jobs are due, and what happened when posting."""

    async def due_deliveries(
        self, limit: int = 20, *, hold_seconds: float = DELIVERY_HOLD_SECONDS, now: datetime | None = None
    ) -> list[Job]:
        """Finished jobs (done, failed or cancelled) whose result should be posted now. They are held
        for `hold_seconds` so another deliverer does not post them too; report back with
        `mark_delivered` or `delivery_failed`."""
        now = _now(now)
        until = now + timedelta(seconds=hold_seconds)
        async with self._engine.begin() as conn:
            rows = (await conn.execute(q.take_deliveries(self._dialect, limit, now, until))).all()
        return sorted((Job.from_row(row) for row in rows), key=lambda job: job.id)

    async def mark_delivered(self, job_id: int, *, now: datetime | None = None, **refs: Any) -> Job:
        """The result is posted; `refs` (e.g. final_message_id=…) are recorded with it."""
        now = _now(now)
        async with self._engine.begin() as conn:
            job = await self._get(conn, job_id, lock=True)
            values = {
                **self._ref_values(job, refs),
                "delivery": Delivery.DELIVERED.value,
                "delivery_next_try_at": None,
                "delivery_error": None,
                "delivered_at": now,
            }
            return Job.from_row((await conn.execute(q.set_delivery(job_id, values))).one())

    async def delivery_failed(
        self,
        job_id: int,
        error: str,
        *,
        retry_after: float | None = None,
        is_permanent: bool = False,
        now: datetime | None = None,
    ) -> Job:
        """Posting failed: try again after `retry_after` seconds (the platform's rate limit said when), or
        after a backoff doubling with each failure that came without one, until `delivery_timeout_seconds`
        after the job finished; then it is undeliverable, `error` kept. A permanent refusal (the platform
        will never take it) is undeliverable at once.

        Rate-limited tries do not double the backoff: a 429 storm followed by one 502 waits 5 s, not the
        40 s that counting every try would give."""
        now = _now(now)
        async with self._engine.begin() as conn:
            job = await self._get(conn, job_id, lock=True)
            finished = job.finished_at or job.created_at
            is_late = (now - finished).total_seconds() >= self.limits.delivery_timeout_seconds
            if is_permanent or is_late:
                values: dict[str, Any] = {
                    "delivery": Delivery.UNDELIVERABLE.value,
                    "delivery_next_try_at": None,
                }
            else:
                failures = job.delivery_failures + (1 if retry_after is None else 0)
                wait = retry_after
                if wait is None:
                    wait = min(DELIVERY_BACKOFF_MAX_SECONDS, DELIVERY_BACKOFF_SECONDS * 2 ** (failures - 1))
                values = {
                    "delivery": Delivery.PENDING.value,
                    "delivery_next_try_at": now + timedelta(seconds=wait),
                    "delivery_failures": failures,
                }
            values["delivery_error"] = error
            return Job.from_row((await conn.execute(q.set_delivery(job_id, values))).one())

    async def record_message_refs(self, job_id: int, **refs: Any) -> Job:
        """Remember platform message ids/tokens (known columns, anything else in the JSON `extra`);
        a poster records a new message here before it retries, so a retry edits instead of re-posting."""
        async with self._engine.begin() as conn:
            job = await self._get(conn, job_id, lock=True)
            return Job.from_row(
                (await conn.execute(q.set_delivery(job_id, self._ref_values(job, refs)))).one()
            )

    @staticmethod
    def _ref_values(job: Job, refs: Mapping[str, Any]) -> dict[str, Any]:
        values = {key: refs[key] for key in REF_COLUMNS if key in refs}
        if "interaction_created_at" in values:
            require_aware(values["interaction_created_at"], "interaction_created_at")
        extra = {key: value for key, value in refs.items() if key not in REF_COLUMNS}
        if extra:
            values["platform_refs"] = {**job.refs.extra, **extra}
        return values
