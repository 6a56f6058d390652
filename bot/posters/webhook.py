"""WebhookPoster: POSTs results to an HTTP endpoint (custom integrations; also how the delivery tests
drive the retry path over a real socket).

    POST <url>  multipart: job (JSON: id, status, prompt, user, channel), grid.png, image-<i>.png
                headers: Idempotency-Key: imagine-job-<id>   (a receiver that saw the key edits, not adds)
    2xx         → {"id": "<message id>"} recorded as final_message_id
    429, 5xx    → PosterError with the Retry-After header (seconds) → retried, then undeliverable
    other 4xx   → PosterError without retry_after → retried on the doubling backoff, then undeliverable
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from bot.posters import PosterError, RecordRefs
from jobs.models import Job

WEBHOOK_TIMEOUT_SECONDS = 20.0


class WebhookPoster:
    def __init__(self, *, url: str, session: aiohttp.ClientSession | None = None) -> None:
        self.url = url
        self._session = session
        self._owns_session = session is None

    async def post_progress(self, job: Job, *, progress: float, record_refs: RecordRefs) -> None:
        return None

    async def post_result(
        self, job: Job, *, grid_png: bytes, images: Sequence[bytes], record_refs: RecordRefs
    ) -> Mapping[str, Any]:
        form = self._form(job, {})
        form.add_field("grid", grid_png, filename="grid.png", content_type="image/png")
        for index, png in enumerate(images):
            form.add_field(f"image-{index}", png, filename=f"{index}.png", content_type="image/png")
        return await self._send(job, form)

    async def post_failure(self, job: Job, *, reason: str, record_refs: RecordRefs) -> Mapping[str, Any]:
        return await self._send(job, self._form(job, {"reason": reason}))

    async def aclose(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()

    def _form(self, job: Job, more: dict[str, Any]) -> aiohttp.FormData:
        form = aiohttp.FormData()
        body = {
            "id": job.id,
            "status": str(job.status),
            "prompt": job.prompt,
            "user": job.user_id,
            "channel": job.channel_id,
            **more,
        }
        form.add_field("job", json.dumps(body))
        return form

    async def _send(self, job: Job, form: aiohttp.FormData) -> Mapping[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_SECONDS)
            )
        headers = {"Idempotency-Key": f"imagine-job-{job.id}"}
        try:
            async with self._session.post(self.url, data=form, headers=headers) as response:
                if response.status >= 400:
                    raise PosterError(
                        f"webhook answered HTTP {response.status}",
                        retry_after=_retry_after(response.headers.get("Retry-After")),
                        status=response.status,
                    )
                answer = await response.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise PosterError(f"webhook unreachable: {type(exc).__name__}: {exc}") from exc
        message_id = answer.get("id") if isinstance(answer, dict) else None
        return {"final_message_id": str(message_id)} if message_id is not None else {}


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is rare for APIs; it falls back to the backoff)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
