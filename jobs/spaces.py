"""Per guild/workspace settings, bans and fairness weights (admin commands and the dashboard
change them). Part of `Queue` (see `jobs/queue.py`)."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from jobs import queries as q
from jobs.base import QueueBase
from jobs.base import now_or_utcnow as _now
from jobs.models import Ban, SpaceSettings


class SpacesMixin(QueueBase):
    """Guild/workspace settings, bans and weights."""

    async def get_settings(self, platform: str, guild_id: str) -> SpaceSettings:
        async with self._reading() as conn:
            return await self._space(conn, platform, guild_id)

    async def update_settings(
        self, platform: str, guild_id: str, *, now: datetime | None = None, **changes: Any
    ) -> SpaceSettings:
        """Change some of a guild's/workspace's settings (see `SpaceSettings.EDITABLE`)."""
        unknown = set(changes) - set(SpaceSettings.EDITABLE)
        if unknown:
            raise ValueError(f"unknown space settings: {', '.join(sorted(unknown))}")
        now = _now(now)
        async with self._engine.begin() as conn:
            current = await self._space(conn, platform, guild_id)
            given: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list | tuple | set) else v for k, v in changes.items()
            }
            merged = replace(current, **given)
            values = {name: getattr(merged, name) for name in SpaceSettings.EDITABLE}
            for name in ("allowed_channels", "blocked_words", "admin_role_ids", "admin_user_ids"):
                values[name] = [str(item) for item in values[name]]
            await conn.execute(
                q.save_space(
                    self._dialect, {"platform": platform, "guild_id": guild_id, "updated_at": now, **values}
                )
            )
        return merged

    async def ban(
        self,
        platform: str,
        user_id: str,
        *,
        guild_id: str = "",
        reason: str = "",
        banned_by: str = "",
        now: datetime | None = None,
    ) -> Ban:
        """Ban a user from /imagine in one guild/workspace, or on the whole platform (guild_id="")."""
        ban = Ban(platform, guild_id, user_id, reason, banned_by, _now(now))
        async with self._engine.begin() as conn:
            await conn.execute(q.add_ban(self._dialect, asdict(ban)))
        return ban

    async def unban(self, platform: str, user_id: str, *, guild_id: str = "") -> bool:
        async with self._engine.begin() as conn:
            return (await conn.execute(q.remove_ban(platform, guild_id, user_id))).rowcount > 0

    async def bans(self, platform: str, guild_id: str | None = None) -> list[Ban]:
        async with self._reading() as conn:
            return [Ban(**row._mapping) for row in await conn.execute(q.list_bans(platform, guild_id))]

    async def set_weight(self, platform: str, user_id: str, weight: float) -> None:
        """A user's share of the GPU relative to others (default 1)."""
        if not weight > 0:
            raise ValueError("weight must be positive")
        async with self._engine.begin() as conn:
            await conn.execute(q.set_weight(self._dialect, platform, user_id, weight))
