"""Who may run the admin commands in a Slack workspace.

An admin is a workspace admin or owner as ``users.info`` reports them (``is_admin``, ``is_owner``,
``is_primary_owner``), or a user id configured as an admin. Answers are cached per (team, user)
for a few minutes: admin commands are rare, but ``users.info`` is a Tier 4 method and a
slash command has 3 seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.errors import slack_error

log = logging.getLogger(__name__)

ADMIN_CACHE_SECONDS = 300.0
_ADMIN_FLAGS = ("is_admin", "is_owner", "is_primary_owner")


class SlackAdmins:
    """Answers "is this user an admin here?"; the web client is passed per call (one per workspace)."""

    def __init__(
        self,
        *,
        admin_user_ids: Collection[str] = (),
        cache_seconds: float = ADMIN_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._admin_user_ids = frozenset(admin_user_ids)
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cached: dict[tuple[str, str], tuple[bool, float]] = {}  # (team, user) → (answer, expiry)

    async def is_admin(self, client: AsyncWebClient, *, team_id: str, user_id: str) -> bool:
        """True for configured ids and workspace admins/owners; unknown users are not admins.

        Other ``users.info`` failures (rate limits, a revoked token) raise `SlackApiError`: the
        caller tells the user it could not check, rather than guessing either way.
        """
        if user_id in self._admin_user_ids:
            return True
        key = (team_id, user_id)
        cached = self._cached.get(key)
        now = self._clock()
        if cached is not None and now < cached[1]:
            return cached[0]
        answer = await self._ask_slack(client, user_id)
        self._cached[key] = (answer, now + self._cache_seconds)
        return answer

    @staticmethod
    async def _ask_slack(client: AsyncWebClient, user_id: str) -> bool:
        try:
            response = await client.users_info(user=user_id)
        except SlackApiError as exc:
            if slack_error(exc) == "user_not_found":
                log.info("users.info: %s not found; not an admin", user_id, extra={"action": "admin_check"})
                return False
            raise
        user = response.get("user") or {}
        return any(user.get(flag) is True for flag in _ADMIN_FLAGS)
