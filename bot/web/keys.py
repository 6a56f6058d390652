"""Typed keys for what the app holds (aiohttp warns on string keys; typed keys also read better)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import jinja2
from aiohttp import web

from bot.web.auth import Credentials, LoginLimiter, Session, SessionStore
from bot.web.config import DashboardConfig

SESSION_COOKIE = "imagine_session"

CONFIG = web.AppKey("config", DashboardConfig)
SETTINGS = web.AppKey("settings", object)
QUEUE = web.AppKey("queue", object)
SESSIONS = web.AppKey("sessions", SessionStore)
CREDENTIALS = web.AppKey("credentials", Credentials)
LIMITER = web.AppKey("limiter", LoginLimiter)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
SESSION = web.RequestKey("session", Session)  # set by the sign-in middleware
NOW = web.AppKey("now", Callable[[], datetime])  # type: ignore[type-abstract]


def queue_of(request: web.Request) -> Any:
    return request.app[QUEUE]
