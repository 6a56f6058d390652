"""DiscordPoster: puts a job's progress and result into the Discord channel it came from.

Runs in the generator's delivery loop (generator/delivery.py), so it speaks REST only (no gateway) with
aiohttp, against `discord.http.Route.BASE` (read per request: tests point it at the fake Discord).

Where a result goes (docs/design.md, "A job's life"; an interaction token is valid for 15 minutes):
- while the interaction token lives (`TOKEN_LIFETIME` after the interaction, less `TOKEN_MARGIN` so an
  upload never straddles the deadline): edit the interaction's original response (`@original`), the
  message that said "Queued", with the grid, its embed and its buttons. An edit is idempotent.
- after that, or when Discord answers 10062 (unknown interaction) or 50027 (invalid webhook token): a
  new channel message, with the bot token, that mentions the requester. It is created as a short text
  first and its id recorded (`record_refs`) before the grid is uploaded into it by an edit, so a retry,
  here or in another generator after a crash, edits that message instead of posting a second copy (and a
  nonce with `enforce_nonce` makes Discord itself return the same message for a repeated create).

Failures: 429 waits its `retry_after` here when that is short (`INLINE_RETRY_SECONDS`), else raises
`PosterError(retry_after=…)` for the delivery loop; 5xx and network errors retry here briefly, then
raise `PosterError`. Uploads respect the interaction's `attachment_size_limit`: PNG, else JPEG, else a
smaller grid, and the same ladder again if Discord still answers 413.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import discord

from bot import messages
from bot.buttons import pick_button_rows, upscaled_button_rows
from bot.discord.embeds import cancelled_embed, done_embed, failed_embed, rendering_embed
from bot.discord.views import grid_view, progress_view, view_of_rows
from bot.posters import PosterError, RecordRefs
from jobs.models import Job, Kind, Status, utcnow
from jobs.settings import Settings

log = logging.getLogger(__name__)

TOKEN_LIFETIME = timedelta(minutes=15)
TOKEN_MARGIN = timedelta(seconds=60)  # stop using a token this long before Discord does
DEFAULT_UPLOAD_LIMIT_BYTES = 10 * 1024 * 1024  # Discord's default per-file limit
REQUEST_TIMEOUT_SECONDS = 20.0
INLINE_RETRY_SECONDS = 2.0  # a 429 asking for at most this long is waited out here
INLINE_TRIES = 3  # attempts per request before handing the failure to the delivery loop
SERVER_ERROR_BACKOFF_SECONDS = 0.25  # doubles per attempt
JPEG_QUALITY = 90
PREVIEW_FILENAME = "preview.png"
TOKEN_GONE_CODES = frozenset({10062, 50027})  # unknown interaction, invalid webhook token
UNKNOWN_MESSAGE_CODE = 10008
NOT_RESPONDED_RETRY_SECONDS = 1.0  # @original not made yet: the frontend is still answering
# Discord gives the frontend 3 s to answer; an @original still unknown after this was deleted.
ANSWER_WINDOW = timedelta(seconds=5)
USER_AGENT = f"DiscordBot (https://github.com/Rapptz/discord.py {discord.__version__}) imagine-bot"


def make_poster(settings: Settings) -> DiscordPoster | None:
    """The registered factory (bot/posters.py): None when no bot token is configured."""
    if settings.discord_token is None:
        return None
    url = settings.discord_api_url.rstrip("/")
    api_base = None if url == Settings.model_fields["discord_api_url"].default else url
    return DiscordPoster(token=settings.discord_token.get_secret_value(), api_base=api_base)


class DiscordApiError(Exception):
    """Discord refused a request in a way not worth retrying as is (4xx other than 429)."""

    def __init__(self, status: int, code: int, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(f"{status} (code {code}): {message}")


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    content_type: str


class DiscordPoster:
    def __init__(
        self,
        *,
        token: str,
        clock: Callable[[], datetime] = utcnow,
        api_base: str | None = None,
        inline_retry_seconds: float = INLINE_RETRY_SECONDS,
        inline_tries: int = INLINE_TRIES,
    ) -> None:
        self._token = token
        self._clock = clock
        self._api_base = api_base
        self.inline_retry_seconds = inline_retry_seconds
        self.inline_tries = inline_tries
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # the token never shows
        return f"<DiscordPoster api_base={self.api_base!r}>"

    @property
    def api_base(self) -> str:
        return self._api_base or discord.http.Route.BASE

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- the Poster protocol ----------------------------------------------------------------------------

    async def post_progress(
        self, job: Job, *, progress: float, record_refs: RecordRefs, preview: bytes | None = None
    ) -> None:
        """Edit the queued message into a progress bar (with the preview of the grid so far, when there
        is one); only while the token lives (best effort)."""
        if not self._token_alive(job):
            return
        embed = rendering_embed(job.prompt, progress=progress)
        upload = None
        payload: dict[str, Any] = {"components": progress_view(job.id).to_components()}
        if preview is not None:
            upload = Upload(PREVIEW_FILENAME, preview, "image/png")
            embed.set_image(url=f"attachment://{PREVIEW_FILENAME}")
            payload["attachments"] = [{"id": 0, "filename": PREVIEW_FILENAME}]
        payload["embeds"] = [embed.to_dict()]
        try:
            await self._request("PATCH", self._original_path(job), payload=payload, upload=upload)
        except DiscordApiError as exc:
            log.info("progress not posted: %s", exc, extra={"action": "progress_skipped", "job_id": job.id})

    async def post_result(
        self, job: Job, *, grid_png: bytes, images: Sequence[bytes], record_refs: RecordRefs
    ) -> Mapping[str, Any]:
        components = result_view(job).to_components()

        def payload(upload: Upload | None) -> dict[str, Any]:
            embed = done_embed(job, grid_filename=upload.filename if upload else "none")
            if upload is None:
                embed.set_image(url=None)
                embed.add_field(name="Picture", value=messages.too_large_to_upload(), inline=False)
            return {"embeds": [embed.to_dict()], "components": components}

        return await self._deliver_or_explain(job, payload, grid_png, record_refs)

    async def post_failure(self, job: Job, *, reason: str, record_refs: RecordRefs) -> Mapping[str, Any]:
        embed = cancelled_embed(job) if job.status is Status.CANCELLED else failed_embed(job, reason=reason)

        def payload(upload: Upload | None) -> dict[str, Any]:
            return {"embeds": [embed.to_dict()], "components": []}

        return await self._deliver_or_explain(job, payload, None, record_refs)

    # --- where it goes ------------------------------------------------------------------------------------

    async def _deliver_or_explain(
        self,
        job: Job,
        payload: Callable[[Upload | None], dict[str, Any]],
        grid_png: bytes | None,
        record_refs: RecordRefs,
    ) -> Mapping[str, Any]:
        try:
            return await self._deliver(job, payload, grid_png, record_refs)
        except DiscordApiError as exc:
            # Discord said no in a way waiting does not change (403 missing access or permissions, 404
            # unknown channel, 400 a payload it will not take): undeliverable now, the reason kept for admins.
            # Rate limits and server errors never get here: `_request` raises them as transient.
            raise PosterError(
                f"Discord refused the post: {exc}", status=exc.status, is_permanent=True
            ) from exc

    async def _deliver(
        self,
        job: Job,
        payload: Callable[[Upload | None], dict[str, Any]],
        grid_png: bytes | None,
        record_refs: RecordRefs,
    ) -> Mapping[str, Any]:
        if job.kind is Kind.UPSCALE:  # a reply to the picked image's message, never the click's answer
            return await self._to_channel(job, payload, grid_png, record_refs)
        via = job.refs.extra.get("delivered_via")
        if via == "interaction" and job.refs.final_message_id and not self._token_alive(job):
            # posted into @original before a crash; the token died since: that post stands
            return {"final_message_id": job.refs.final_message_id, "delivered_via": "interaction"}
        if via != "channel" and self._token_alive(job):
            try:
                message = await self._upload(job, "PATCH", self._original_path(job), payload, grid_png)
            except DiscordApiError as exc:
                if exc.code == UNKNOWN_MESSAGE_CODE and self._token_age(job) < ANSWER_WINDOW:
                    raise PosterError(
                        "the interaction has no answer yet", retry_after=NOT_RESPONDED_RETRY_SECONDS
                    ) from exc
                # the original answer is gone (token revoked, or the message deleted): post anew
                if exc.code not in TOKEN_GONE_CODES and exc.code != UNKNOWN_MESSAGE_CODE:
                    raise
                log.info(
                    "token gone, posting to the channel", extra={"action": "token_gone", "job_id": job.id}
                )
            else:
                refs = {
                    "final_message_id": str(message["id"]),
                    "final_channel_id": str(message.get("channel_id") or job.channel_id),
                    "delivered_via": "interaction",
                }
                await record_refs(**refs)
                return refs
        return await self._to_channel(job, payload, grid_png, record_refs)

    async def _to_channel(
        self,
        job: Job,
        payload: Callable[[Upload | None], dict[str, Any]],
        grid_png: bytes | None,
        record_refs: RecordRefs,
    ) -> Mapping[str, Any]:
        path = f"/channels/{job.channel_id}/messages"
        message_id = job.refs.final_message_id if job.refs.extra.get("delivered_via") == "channel" else None
        if not message_id:
            mention = f"<@{job.user_id}>"
            text = (
                messages.result_ready_mention(mention)
                if job.status is Status.DONE
                else messages.failure_mention(mention)
            )
            created = await self._request(
                "POST",
                path,
                payload={
                    "content": text,
                    "allowed_mentions": {"parse": [], "users": [job.user_id]},
                    "nonce": f"imagine-{job.id}"[:25],
                    "enforce_nonce": True,
                    **_reply_reference(job),
                },
                bot_auth=True,
            )
            message_id = str(created["id"])
            # recorded before the upload: every retry from here on edits this message
            await record_refs(
                final_message_id=message_id, final_channel_id=job.channel_id, delivered_via="channel"
            )
        await self._upload(job, "PATCH", f"{path}/{message_id}", payload, grid_png, bot_auth=True)
        return {
            "final_message_id": message_id,
            "final_channel_id": job.channel_id,
            "delivered_via": "channel",
        }

    async def _upload(
        self,
        job: Job,
        method: str,
        path: str,
        payload: Callable[[Upload | None], dict[str, Any]],
        grid_png: bytes | None,
        *,
        bot_auth: bool = False,
    ) -> dict[str, Any]:
        """Send `payload` with the grid, trying smaller encodings while Discord says 413."""
        if grid_png is None:
            return await self._request(method, path, payload=payload(None), bot_auth=bot_auth)
        limit = int(job.refs.extra.get("attachment_size_limit") or DEFAULT_UPLOAD_LIMIT_BYTES)
        for upload in grid_uploads(grid_png, limit):
            body = {**payload(upload), "attachments": [{"id": 0, "filename": upload.filename}]}
            try:
                return await self._request(method, path, payload=body, upload=upload, bot_auth=bot_auth)
            except DiscordApiError as exc:
                if exc.status != 413:
                    raise
                log.info(
                    "upload too large, trying smaller",
                    extra={"action": "upload_413", "job_id": job.id, "bytes": len(upload.data)},
                )
        return await self._request(
            method, path, payload={**payload(None), "attachments": []}, bot_auth=bot_auth
        )

    # --- tokens ---------------------------------------------------------------------------------------------

    def _token_age(self, job: Job) -> timedelta:
        created = job.refs.interaction_created_at
        return self._clock() - created if created else TOKEN_LIFETIME

    def _token_alive(self, job: Job) -> bool:
        if not job.refs.interaction_token or not job.refs.extra.get("application_id"):
            return False
        return self._token_age(job) < TOKEN_LIFETIME - TOKEN_MARGIN

    def _original_path(self, job: Job) -> str:
        return f"/webhooks/{job.refs.extra['application_id']}/{job.refs.interaction_token}/messages/@original"

    # --- HTTP -----------------------------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        payload: dict[str, Any],
        upload: Upload | None = None,
        bot_auth: bool = False,
    ) -> dict[str, Any]:
        """One REST call with bounded retries here; PosterError when the delivery loop should retry."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
            )
        headers = {"User-Agent": USER_AGENT}
        if bot_auth:  # webhook routes authenticate with the interaction token in the path
            headers["Authorization"] = f"Bot {self._token}"
        what = f"{method} {_redacted(path)}"
        for attempt in range(1, self.inline_tries + 1):
            is_last = attempt == self.inline_tries
            try:
                async with self._session.request(
                    method, self.api_base + path, data=_body(payload, upload), headers=headers
                ) as response:
                    body = await _json(response)
                    status = response.status
                    retry_after = _retry_after(response, body) if status == 429 else None
            except (aiohttp.ClientError, TimeoutError) as exc:
                if is_last:
                    raise PosterError(f"{what}: {type(exc).__name__}: {exc}"[:300]) from exc
                await asyncio.sleep(SERVER_ERROR_BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            if status < 300:
                return body if isinstance(body, dict) else {}
            if status == 429:
                assert retry_after is not None
                if is_last or retry_after > self.inline_retry_seconds:
                    raise PosterError(f"{what}: rate limited", retry_after=retry_after, status=429)
                await asyncio.sleep(retry_after)
                continue
            if status >= 500:
                if is_last:
                    raise PosterError(f"{what}: Discord answered {status}", status=status)
                await asyncio.sleep(SERVER_ERROR_BACKOFF_SECONDS * 2 ** (attempt - 1))
                continue
            code = int(body.get("code", 0)) if isinstance(body, dict) else 0
            message = str(body.get("message", "")) if isinstance(body, dict) else str(body)[:200]
            raise DiscordApiError(status, code, message)
        raise AssertionError("unreachable")


def result_view(job: Job) -> discord.ui.View:
    """The buttons under a result: U/V per image and 🔄 ℹ️; a pick (one image) gets V1, ⬆ Upscale,
    🔄 and ℹ️; an upscaled picture ℹ️ alone."""
    if job.kind is Kind.PICK:
        return view_of_rows(pick_button_rows(job.id))
    if job.kind is Kind.UPSCALE:
        return view_of_rows(upscaled_button_rows(job.id))
    return grid_view(job.id, job.images)


def _reply_reference(job: Job) -> dict[str, Any]:
    """An upscale answers the message its ⬆ was clicked on (still posted if that one was deleted)."""
    reply_to = job.refs.extra.get("reply_to_message_id")
    if job.kind is not Kind.UPSCALE or not reply_to:
        return {}
    return {"message_reference": {"message_id": str(reply_to), "fail_if_not_exists": False}}


def grid_uploads(grid_png: bytes, limit: int) -> Iterator[Upload]:
    """The grid as PNG if it fits `limit`, else as JPEG, else as ever smaller JPEGs (½, ¼, ⅛ size)."""
    if len(grid_png) <= limit:
        yield Upload("grid.png", grid_png, "image/png")
    from PIL import Image  # only when a fallback is needed

    with Image.open(io.BytesIO(grid_png)) as opened:
        image = opened.convert("RGB")
    for scale in (1, 2, 4, 8):
        size = (max(1, image.width // scale), max(1, image.height // scale))
        buffer = io.BytesIO()
        image.resize(size, Image.Resampling.LANCZOS).save(buffer, format="JPEG", quality=JPEG_QUALITY)
        data = buffer.getvalue()
        if len(data) <= limit:
            yield Upload("grid.jpg", data, "image/jpeg")


def _body(payload: dict[str, Any], upload: Upload | None) -> Any:
    """JSON, or multipart `payload_json` + `files[0]` (rebuilt per attempt: a FormData is single-use)."""
    text = json.dumps(payload)
    if upload is None:
        return aiohttp.payload.StringPayload(text, content_type="application/json")
    form = aiohttp.FormData()
    form.add_field("payload_json", text, content_type="application/json")
    form.add_field("files[0]", upload.data, filename=upload.filename, content_type=upload.content_type)
    return form


async def _json(response: aiohttp.ClientResponse) -> Any:
    text = await response.text()
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text


def _retry_after(response: aiohttp.ClientResponse, body: Any) -> float:
    if isinstance(body, dict) and body.get("retry_after") is not None:
        return float(body["retry_after"])
    try:
        return float(response.headers.get("Retry-After", "1"))
    except ValueError:
        return 1.0


def _redacted(path: str) -> str:
    """A path for logs and reasons: interaction tokens are secrets for 15 minutes."""
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "webhooks":
        parts[3] = "…"
    return "/".join(parts)
