"""SlackPoster: a Slack job's progress, grid and buttons, posted with the bot token by the generator.

    placeholder (posted by the frontend at enqueue)  ── chat.update: progress bar … then "done"
    grid.png   files.getUploadURLExternal → POST bytes → files.completeUploadExternal (channel_id)
    buttons    chat.postMessage: U1..Un, V1..Vn, reroll, parameters (Block Kit, `bot.slack.blocks`)
    previews   while drawing: preview.png uploaded unshared (no channel_id), shown on the placeholder
               by an `image` block that names the file (`slack_file`), below the progress line

The upload is the same three steps `files_upload_v2` runs, taken one by one so each step's outcome is
recorded on the job (`record_refs`) before the next: a retry after a 429, a 5xx or a crashed generator
resumes where the last attempt stopped and never shares the grid or posts the buttons twice.

    refs.extra["grid_file_id"]   the uploaded file (re-completed, not re-uploaded, on retry)
    refs.extra["grid_shared"]    completeUploadExternal succeeded: the grid is in the channel
    refs.extra["buttons_ts"]     the buttons message exists (also returned as final_message_id)

(What remains is the moment between Slack's answer and the record: a crash exactly there repeats that
one step — Slack offers no idempotency key to close it.)

Rate limits: the Web API client retries a 429 after its Retry-After (`AsyncRateLimitErrorRetryHandler`);
when that is used up, or on 5xx, a `PosterError` carrying Retry-After goes back to the delivery loop,
which retries later. A channel the bot was removed from is a `PosterError` too: the job is delivered
once someone invites the bot again, within the delivery timeout.

Previews (at most three a job) are a courtesy: each uploads in a task of its own with the progress
client (no sleeping through a 429), so the delivery loop never waits for one; while one uploads a newer
one waits for the next progress edit; the placeholder shows a preview once its upload completed. A failed
preview upload (429, 5xx, a body that is not JSON) is logged once and the job's progress stays text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.posters import PosterError, RecordRefs
from bot.slack import texts
from bot.slack.blocks import grid_blocks, progress_blocks
from bot.slack.errors import NOT_IN_CHANNEL_ERRORS, is_permanent, slack_error
from bot.slack.jobs import status_blocks
from jobs.models import Job, Kind, Status
from jobs.settings import Settings
from jobs.slack_installs import SlackInstallations

log = logging.getLogger(__name__)

RATE_LIMIT_RETRIES = 2  # 429s the client sleeps through itself before the delivery loop takes over
SERVER_ERROR_RETRIES = 1
UPLOAD_TIMEOUT_SECONDS = 30.0
# Errors after which the same message will never be editable: post anew instead.
_GONE_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


def retry_handlers(*, rate_limit_retries: int = RATE_LIMIT_RETRIES) -> list[AsyncRetryHandler]:
    """What every Slack Web API client of this bot retries by itself (slack_sdk installs none for 429)."""
    return [
        AsyncConnectionErrorRetryHandler(),
        AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
        AsyncServerErrorRetryHandler(max_retry_count=SERVER_ERROR_RETRIES),
    ]


def make_poster(settings: Settings) -> SlackPoster | None:
    """`bot.posters` factory: a poster with the bot token, or with each workspace's installed token."""
    if settings.slack_oauth:
        installations = SlackInstallations.connect(settings, client_id=str(settings.slack_client_id))
        return SlackPoster(workspaces=WorkspaceClients(installations, base_url=settings.slack_api_url))
    if settings.slack_bot_token is None:
        return None
    clients = Clients.for_token(settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)
    return SlackPoster(client=clients.client, progress_client=clients.progress)


@dataclass
class _Previews:
    """One rendering job's previews on its placeholder."""

    shown_png: bytes | None = None  # the preview whose upload completed ...
    shown_file_id: str | None = None  # ... and its file
    upload: asyncio.Task[None] | None = None  # the one preview upload in flight, if any
    uploading_png: bytes | None = None
    failed: bool = False  # an upload failed: text progress only from then on
    progress: float = 0.0  # the latest progress posted: a preview's own edit never moves the bar back


@dataclass(frozen=True)
class Clients:
    """The Web API clients of one workspace's bot token."""

    client: AsyncWebClient  # retries 429s and 5xx a few times itself
    progress: AsyncWebClient  # progress is a courtesy: never sleeps through a 429 (the next update comes)

    @classmethod
    def for_token(cls, token: str, *, base_url: str) -> Clients:
        return cls(
            AsyncWebClient(token=token, base_url=base_url, retry_handlers=retry_handlers()),
            AsyncWebClient(
                token=token, base_url=base_url, retry_handlers=[AsyncConnectionErrorRetryHandler()]
            ),
        )


class WorkspaceClients:
    """Installs by OAuth: the clients of a job's workspace, with the token its installation holds now
    (looked up per delivery, so an uninstall stops the next post at once)."""

    def __init__(self, installations: SlackInstallations, *, base_url: str) -> None:
        self.installations = installations
        self.base_url = base_url

    async def of(self, job: Job) -> Clients:
        enterprise_id = job.refs.extra.get("enterprise_id") or None
        token = await self.installations.bot_token(team_id=job.guild_id, enterprise_id=enterprise_id)
        if token is None:
            raise PosterError(texts.workspace_uninstalled(job.guild_id), is_permanent=True)
        return Clients.for_token(token, base_url=self.base_url)

    async def aclose(self) -> None:
        await self.installations.close()


class SlackPoster:
    """Posts Slack jobs (see the module docstring). Clients are injected: tests point them at a fake."""

    def __init__(
        self,
        *,
        client: AsyncWebClient | None = None,
        progress_client: AsyncWebClient | None = None,
        workspaces: WorkspaceClients | None = None,
    ) -> None:
        if (client is None) == (workspaces is None):
            raise ValueError("a SlackPoster posts with one client or with each workspace's (not both)")
        self._clients = Clients(client, progress_client or client) if client is not None else None
        self.workspaces = workspaces
        self._session: aiohttp.ClientSession | None = None  # the upload host's POSTs
        self._previews: dict[int, _Previews] = {}  # by job id, while the job renders

    async def aclose(self) -> None:
        for job_id in list(self._previews):
            await self._forget_previews(job_id)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.workspaces is not None:
            await self.workspaces.aclose()

    async def _clients_of(self, job: Job) -> Clients:
        if self._clients is not None:
            return self._clients
        assert self.workspaces is not None
        return await self.workspaces.of(job)

    # --- Poster protocol ------------------------------------------------------------------------------

    async def post_progress(
        self, job: Job, *, progress: float, record_refs: RecordRefs, preview: bytes | None = None
    ) -> None:
        ts = job.refs.placeholder_message_id
        if not ts:
            return  # the frontend has not recorded its placeholder yet; the next update will find it
        text = texts.placeholder_progress(job, progress)
        try:
            progress_client = (await self._clients_of(job)).progress
        except PosterError:
            return  # uninstalled: the result's delivery says so
        previews = self._previews.setdefault(job.id, _Previews())
        previews.progress = max(previews.progress, progress)
        if preview is not None:
            self._start_preview_upload(progress_client, job, progress, preview, previews)
        await self._edit_progress(progress_client, job, progress, text, previews)

    async def _edit_progress(
        self, client: AsyncWebClient, job: Job, progress: float, text: str, previews: _Previews
    ) -> None:
        """The progress line, with the latest uploaded preview under it when there is one."""
        ts = job.refs.placeholder_message_id
        if not ts:
            return
        file_id = None if previews.failed else previews.shown_file_id
        blocks = progress_blocks(
            job.id, status=text, preview_file_id=file_id, preview_alt=texts.preview_alt(job, progress)
        )
        try:
            await client.chat_update(
                channel=job.channel_id,
                ts=ts,
                text=texts.escape(text),
                blocks=blocks,
            )
        except SlackApiError as exc:
            if file_id is not None and slack_error(exc) == "invalid_blocks":
                # Slack would not show the file (not processed yet, gone): the progress line alone.
                self._preview_failed(job, previews, slack_error(exc))
                await self._edit_progress(client, job, progress, text, previews)
                return
            log.info(
                "progress not posted: %s",
                slack_error(exc),
                extra={"action": "progress_skipped", "job_id": job.id},
            )

    def _start_preview_upload(
        self, client: AsyncWebClient, job: Job, progress: float, png: bytes, previews: _Previews
    ) -> None:
        """Upload a new preview in the background: one at a time per job, none after a failure."""
        if previews.failed or png in (previews.shown_png, previews.uploading_png):
            return
        if previews.upload is not None and not previews.upload.done():
            return  # the previous one is still uploading: this one waits for the next progress edit
        previews.uploading_png = png
        task = asyncio.create_task(
            self._upload_preview(client, job, progress, png, previews), name=f"slack-preview-{job.id}"
        )
        previews.upload = task

    async def _upload_preview(
        self, client: AsyncWebClient, job: Job, progress: float, png: bytes, previews: _Previews
    ) -> None:
        try:
            file_id = await self._upload(
                client,
                job,
                png,
                filename=f"imagine-{job.id}-preview.png",
                alt_txt=texts.preview_alt(job, progress),
            )
            # No channel_id: the file stays private to the bot; the image block shows it in place.
            await client.files_completeUploadExternal(
                files=[{"id": file_id, "title": texts.preview_title(job)}]
            )
        except Exception as exc:  # a preview is a courtesy: whatever went wrong, the job goes on as text
            self._preview_failed(
                job, previews, slack_error(exc) if isinstance(exc, SlackApiError) else str(exc)
            )
            return
        finally:
            previews.uploading_png = None
        previews.shown_png, previews.shown_file_id = png, file_id
        if job.id not in self._previews:
            return  # the job ended meanwhile
        # Shown now, not at the next progress edit (a fast GPU may not make another before the end).
        progress = previews.progress
        try:
            await self._edit_progress(
                client, job, progress, texts.placeholder_progress(job, progress), previews
            )
        except Exception as exc:  # nobody awaits this task: say it here, as the delivery loop would
            log.info("progress not posted: %s", exc, extra={"action": "progress_skipped", "job_id": job.id})

    def _preview_failed(self, job: Job, previews: _Previews, error: str) -> None:
        if not previews.failed:
            log.info("preview not shown: %s", error, extra={"action": "preview_skipped", "job_id": job.id})
        previews.failed = True

    async def _forget_previews(self, job_id: int) -> None:
        """The job ended: no preview edit may follow its final sentence."""
        previews = self._previews.pop(job_id, None)
        if previews is not None and previews.upload is not None and not previews.upload.done():
            previews.upload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await previews.upload

    async def post_result(
        self, job: Job, *, grid_png: bytes, images: Sequence[bytes], record_refs: RecordRefs
    ) -> Mapping[str, Any]:
        await self._forget_previews(job.id)
        extra = dict(job.refs.extra)
        client = (await self._clients_of(job)).client
        try:
            if not extra.get("grid_shared"):
                await self._share_grid(client, job, grid_png, extra, record_refs)
            buttons_ts = extra.get("buttons_ts")
            if not buttons_ts:
                count = 1 if job.kind is Kind.PICK else job.images
                posted = await client.chat_postMessage(
                    channel=job.channel_id,
                    text=texts.buttons_fallback(job),
                    blocks=grid_blocks(job.id, count, caption=texts.buttons_caption(job), kind=job.kind),
                    **_thread(job),
                )
                buttons_ts = str(posted["ts"])
                await record_refs(buttons_ts=buttons_ts)
            # Last: the placeholder says "done" only once the pictures are there.
            await self._finish_placeholder(client, job, texts.placeholder_done(job))
        except SlackApiError as exc:
            raise _poster_error(exc, job) from exc
        return {"final_message_id": buttons_ts, "grid_file_id": extra.get("grid_file_id")}

    async def post_failure(self, job: Job, *, reason: str, record_refs: RecordRefs) -> Mapping[str, Any]:
        """Cancelled: the placeholder says so. Failed: it says why, and the requester gets an ephemeral
        note with the reason (a placeholder may have scrolled away)."""
        await self._forget_previews(job.id)
        client = (await self._clients_of(job)).client
        try:
            await self._finish_placeholder(client, job, texts.placeholder_failed(job, reason))
            if job.status is Status.FAILED and not job.refs.extra.get("failure_noted"):
                await client.chat_postEphemeral(
                    channel=job.channel_id, user=job.user_id, text=texts.failure_notice(job, reason)
                )
                await record_refs(failure_noted=True)
        except SlackApiError as exc:
            raise _poster_error(exc, job) from exc
        return {"final_message_id": job.refs.placeholder_message_id}

    # --- steps ----------------------------------------------------------------------------------------

    async def _finish_placeholder(self, client: AsyncWebClient, job: Job, text: str) -> None:
        """Turn the placeholder into its final sentence (idempotent: the same edit twice is harmless)."""
        ts = job.refs.placeholder_message_id
        if not ts:
            return
        try:
            await client.chat_update(
                channel=job.channel_id, ts=ts, text=texts.escape(text), blocks=status_blocks(text)
            )
        except SlackApiError as exc:
            if slack_error(exc) not in _GONE_ERRORS:
                raise
            log.info(
                "placeholder gone: %s",
                slack_error(exc),
                extra={"action": "placeholder_gone", "job_id": job.id},
            )

    async def _share_grid(
        self,
        client: AsyncWebClient,
        job: Job,
        grid_png: bytes,
        extra: dict[str, Any],
        record_refs: RecordRefs,
    ) -> None:
        file_id = extra.get("grid_file_id")
        if not file_id:
            file_id = await self._upload(client, job, grid_png)
            await record_refs(grid_file_id=file_id)
            extra["grid_file_id"] = file_id
        try:
            await client.files_completeUploadExternal(
                files=[{"id": file_id, "title": texts.grid_title(job)}],
                channel_id=job.channel_id,
                initial_comment=texts.grid_comment(job),
                **_thread(job),
            )
        except SlackApiError as exc:
            if slack_error(exc) != "file_not_found":
                raise
            # The uploaded bytes expired before completion: upload again (the old file was never shared).
            file_id = await self._upload(client, job, grid_png)
            await record_refs(grid_file_id=file_id)
            extra["grid_file_id"] = file_id
            await client.files_completeUploadExternal(
                files=[{"id": file_id, "title": texts.grid_title(job)}],
                channel_id=job.channel_id,
                initial_comment=texts.grid_comment(job),
                **_thread(job),
            )
        await record_refs(grid_shared=True)
        extra["grid_shared"] = True

    async def _upload(
        self,
        client: AsyncWebClient,
        job: Job,
        png: bytes,
        *,
        filename: str | None = None,
        alt_txt: str | None = None,
    ) -> str:
        """Steps 1-2 of the upload: reserve a file id, POST the bytes to Slack's upload host."""
        reserved = await client.files_getUploadURLExternal(
            filename=filename or f"imagine-{job.id}.png",
            length=len(png),
            alt_txt=(alt_txt or job.prompt)[:1000],
        )
        upload_url, file_id = str(reserved["upload_url"]), str(reserved["file_id"])
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=UPLOAD_TIMEOUT_SECONDS))
        try:
            async with self._session.post(upload_url, data=png) as response:
                body = await response.text()
                if response.status != 200:
                    raise PosterError(
                        f"Slack's upload host answered {response.status}: {body[:200]}",
                        retry_after=_retry_after(response.headers.get("Retry-After")),
                        status=response.status,
                    )
        except aiohttp.ClientError as exc:
            raise PosterError(f"upload to Slack failed: {type(exc).__name__}: {exc}") from exc
        return file_id


def _thread(job: Job) -> dict[str, Any]:
    """An upscale is posted in the thread of the message its ⬆ was clicked on."""
    reply_to = job.refs.extra.get("reply_to_ts")
    return {"thread_ts": str(reply_to)} if job.kind is Kind.UPSCALE and reply_to else {}


def _retry_after(value: Any) -> float | None:
    if isinstance(value, list | tuple):  # slack_sdk's retry layer keeps header values as lists
        value = value[0] if value else None
    try:
        return float(value) if value else None
    except (TypeError, ValueError):
        return None


def _header(headers: Any, name: str) -> Any:
    for key in getattr(headers, "keys", lambda: [])():
        if str(key).lower() == name:
            return headers[key]
    return None


def _poster_error(exc: SlackApiError, job: Job) -> PosterError:
    """A Slack refusal as the delivery loop's error: permanent (the bot was removed from the channel, the
    token revoked) or retried, with Retry-After when Slack sent one."""
    response = exc.response
    status = response.status_code if response is not None else None
    retry_after = _retry_after(_header(response.headers, "retry-after") if response is not None else None)
    error = slack_error(exc)
    if error in NOT_IN_CHANNEL_ERRORS:
        reason = f"{error}: the bot cannot post in {job.channel_id} (invite it, then reroll)"
    else:
        reason = f"Slack refused ({status}): {error}"
    return PosterError(reason, retry_after=retry_after, status=status, is_permanent=is_permanent(error))
