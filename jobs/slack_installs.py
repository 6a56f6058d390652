"""The Slack workspaces installed through "Add to Slack", in our own database.

slack_sdk's own stores do the work: `AsyncSQLAlchemyInstallationStore` keeps each workspace's bot token
(the tables `slack_installations` and `slack_bots`, created by our migrations, see jobs/schema.py) and
`AsyncSQLAlchemyOAuthStateStore` the one-time `state` of each install in progress (`slack_oauth_states`:
a state is deleted when consumed, so a replayed or forged redirect finds none). Bolt's OAuth flow
(bot/slack/oauth.py) saves installations and consumes states through them; the frontend and the
generator's poster read the bot token of a job's workspace with `bot_token`.

They live here, in `jobs/`, because they are SQL: `bot/` and `generator/` see only this object.
"""

from __future__ import annotations

from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy.ext.asyncio import AsyncEngine

from jobs.db import connect
from jobs.queue import Queue
from jobs.settings import Settings

STATE_EXPIRATION_SECONDS = 600  # an install started and not finished within 10 minutes starts over


class SlackInstallations:
    """slack_sdk's installation and OAuth-state stores over the queue's database."""

    def __init__(self, engine: AsyncEngine, *, client_id: str, owns_engine: bool = False) -> None:
        self.installation_store = AsyncSQLAlchemyInstallationStore(client_id=client_id, engine=engine)
        self.state_store = AsyncSQLAlchemyOAuthStateStore(
            expiration_seconds=STATE_EXPIRATION_SECONDS, engine=engine
        )
        self._engine = engine
        self._owns_engine = owns_engine

    @classmethod
    def of_queue(cls, queue: Queue, *, client_id: str) -> SlackInstallations:
        """On the queue's own engine (the frontend: one pool for everything)."""
        return cls(queue._engine, client_id=client_id)

    @classmethod
    def connect(cls, settings: Settings, *, client_id: str) -> SlackInstallations:
        """On an engine of its own (the generator's poster, which holds no queue); `close` it."""
        return cls(connect(settings), client_id=client_id, owns_engine=True)

    async def bot_token(self, *, team_id: str, enterprise_id: str | None) -> str | None:
        """The bot token of this workspace (or of its Enterprise Grid org install); None once uninstalled."""
        store = self.installation_store
        bot = await store.async_find_bot(enterprise_id=enterprise_id, team_id=team_id)
        if bot is None and enterprise_id:
            bot = await store.async_find_bot(
                enterprise_id=enterprise_id, team_id=None, is_enterprise_install=True
            )
        return bot.bot_token if bot is not None else None

    async def close(self) -> None:
        if self._owns_engine:
            await self._engine.dispose()
