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


FRONTENDS: tuple[Frontend, ...] = (
    Frontend("discord", lambda s: s.discord_token is not None, "bot.discord.app:run_discord"),
    Frontend(
        "slack",
        # Socket Mode with an app-level token, else HTTP mode with the signing secret (bot/slack/app.py)
        lambda s: (
            s.slack_bot_token is not None
            and (s.slack_app_token is not None or s.slack_signing_secret is not None)
        ),
        "bot.slack.app:run_slack",
    ),
    Frontend("dashboard", lambda s: s.dashboard_enabled, "bot.web.server:run_dashboard"),
)


def enabled_frontends(settings: Settings, frontends: tuple[Frontend, ...] = FRONTENDS) -> list[Frontend]:
    return [frontend for frontend in frontends if frontend.is_enabled(settings)]
