"""Posters put a job's progress and result into the chat it came from; the generator's delivery loop
(`generator/delivery.py`) calls them. One poster per platform, looked up by `Job.platform`.

    Poster (protocol)
    ├── StoredResultPoster  platform "cli" and "web": the result stays in the queue (bot/stored.py)
    ├── DiscordPoster       bot/discord/poster.py: edits the interaction's original response, else posts
    └── SlackPoster         bot/slack/poster.py: uploads the grid, chat.update of the placeholder message

Contract (the delivery loop relies on it):
- A poster is **idempotent across retries and restarts**. The job carries the message refs recorded so
  far (`job.refs`); when a message already exists, edit it instead of posting a new one. When a poster
  creates a message, it calls `record_refs(...)` with its id *before* anything else can fail, so a retry
  (in this process or another after a crash) edits that message rather than posting a second copy.
- A transient failure (HTTP 429/5xx, timeouts) raises `PosterError(reason, retry_after=seconds or None)`;
  the loop retries with backoff (honouring `retry_after`) until `IMAGINE_DELIVERY_TIMEOUT_SECONDS`, then
  marks the job undeliverable with `reason` kept for admins. A refusal that waiting cannot change (no
  access to the channel, an unknown channel, a revoked token) raises `PosterError(..., is_permanent=True)`:
  undeliverable at once, the reason kept. Any other exception is a poster bug: logged with its traceback
  and retried like a transient failure.
- The mapping `post_result`/`post_failure` return is stored with the job (`Queue.mark_delivered`): known
  keys `final_message_id`, `placeholder_message_id`, `response_url`, …, anything else goes to `extra`.

Registering a poster: add the platform to `POSTER_FACTORIES` below as "module:function"; the function
takes the `Settings` and returns a Poster, or None when its credentials are not configured (the jobs of
that platform then wait, retried, until another generator that has them delivers them or they time out).
Modules are imported only when a generator starts, so `bot` stays free of heavy imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, cast, runtime_checkable

from jobs.errors import ImagineError
from jobs.models import Job
from jobs.settings import Settings

RecordRefs = Callable[..., Awaitable[None]]
"""`await record_refs(final_message_id="…", any_extra_key=…)`: store message refs on the job now."""

PosterFactory = Callable[[Settings], "Poster | None"]

# platform → "module:function(settings) -> Poster | None". Discord and Slack add theirs here.
POSTER_FACTORIES: dict[str, str] = {
    "cli": "bot.stored:make_poster",
    "web": "bot.stored:make_poster",
    "slack": "bot.slack.poster:make_poster",
    "discord": "bot.discord.poster:make_poster",
}


class PosterError(ImagineError):
    """Posting to the chat failed. Transient (a rate limit, a server error, a timeout): the delivery loop
    retries. Permanent (`is_permanent`: the bot was removed, the channel is gone, the token revoked):
    the job is undeliverable at once, with `reason` kept for admins.

    `retry_after` is the platform's Retry-After in seconds, if it sent one; `status` the HTTP status."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        is_permanent: bool = False,
    ) -> None:
        self.reason = reason
        self.retry_after = retry_after
        self.status = status
        self.is_permanent = is_permanent
        super().__init__(reason)


@runtime_checkable
class Poster(Protocol):
    """Puts one platform's job updates into its chat. See the module docstring for the contract."""

    async def post_progress(
        self, job: Job, *, progress: float, record_refs: RecordRefs, preview: bytes | None = None
    ) -> None:
        """A running job's progress (0..1), with a small PNG of the grid so far when previews are on;
        called at most every few seconds per job. Best effort."""

    async def post_result(
        self, job: Job, *, grid_png: bytes, images: Sequence[bytes], record_refs: RecordRefs
    ) -> Mapping[str, Any]:
        """The finished grid (PNG) and each image (PNG, index order) → message refs to keep."""

    async def post_failure(self, job: Job, *, reason: str, record_refs: RecordRefs) -> Mapping[str, Any]:
        """A failed or cancelled job (`job.status` says which); `reason` is user-facing."""

    async def aclose(self) -> None:
        """Release connections; called once when the generator stops."""


def load_factory(spec: str) -> PosterFactory:
    module_name, _, function_name = spec.partition(":")
    return cast(PosterFactory, getattr(importlib.import_module(module_name), function_name))


def make_posters(
    settings: Settings, factories: Mapping[str, str | PosterFactory] | None = None
) -> dict[str, Poster]:
    """The posters this process can use: every registered platform whose factory returns one."""
    posters: dict[str, Poster] = {}
    for platform, spec in (factories if factories is not None else POSTER_FACTORIES).items():
        factory = load_factory(spec) if isinstance(spec, str) else spec
        poster = factory(settings)
        if poster is not None:
            posters[platform] = poster
    return posters
