"""The frontends `imagine serve` starts beside the generator: each one whose credentials are configured.

A frontend is an async context manager `run(settings, queue)` that serves while its block is open (the
dashboard's `bot.web.server:run_dashboard` is the model). To add one, add a `Frontend` line below: its
name, the test of the settings that turns it on, and its "module:function". Modules are imported only when
enabled, so a missing optional dependency of one frontend never stops the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, cast

from jobs.errors import SettingsError
from jobs.settings import Settings

RunFrontend = Callable[[Settings, Any], AbstractAsyncContextManager[Any]]


@dataclass(frozen=True)
class Frontend:
    name: str
    is_enabled: Callable[[Settings], bool]
    run: str  # "module:function" → RunFrontend

    def load(self) -> RunFrontend:
        module_name, _, function_name = self.run.partition(":")
        return cast(RunFrontend, getattr(importlib.import_module(module_name), function_name))


def _slack_is_enabled(settings: Settings) -> bool:
    """A bot token (one workspace) or the OAuth client credentials (installs) turn Slack on; it then needs
    its mode: Socket Mode (an app-level token) or HTTP mode (the signing secret). Credentials alone are a
    mistake to say at start, not a frontend silently off."""
    if settings.slack_bot_token is None and not settings.slack_oauth:
        return False
    if settings.slack_app_token is None and settings.slack_signing_secret is None:
        raise SettingsError(
            "set IMAGINE_SLACK_APP_TOKEN (xapp-…, Socket Mode) or IMAGINE_SLACK_SIGNING_SECRET (HTTP mode)"
        )
    return True


FRONTENDS: tuple[Frontend, ...] = (
    Frontend("discord", lambda s: s.discord_token is not None, "bot.discord.app:run_discord"),
    Frontend("slack", _slack_is_enabled, "bot.slack.app:run_slack"),
    Frontend("dashboard", lambda s: s.dashboard_enabled, "bot.web.server:run_dashboard"),
)


def enabled_frontends(settings: Settings, frontends: tuple[Frontend, ...] = FRONTENDS) -> list[Frontend]:
    """The frontends whose credentials are set; raises `SettingsError` for one that is half set."""
    return [frontend for frontend in frontends if frontend.is_enabled(settings)]
