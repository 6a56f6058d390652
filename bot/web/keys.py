"""Typed keys for what the app holds (aiohttp warns on string keys; typed keys also read better)."""

from __future__ import annotations

import jinja2
from aiohttp import web

from bot.web.auth import Credentials, LoginLimiter, Session, SessionStore
from bot.web.config import DashboardConfig
from jobs.health import NOW, QUEUE  # the keys the shared /healthz and /metrics handlers read
from jobs.queue import Queue

__all__ = ["CONFIG", "CREDENTIALS", "LIMITER", "NOW", "QUEUE", "SESSION", "SESSIONS", "SETTINGS", "TEMPLATES"]

SESSION_COOKIE = "imagine_session"

CONFIG = web.AppKey("config", DashboardConfig)
SETTINGS = web.AppKey("settings", object)
SESSIONS = web.AppKey("sessions", SessionStore)
CREDENTIALS = web.AppKey("credentials", Credentials)
LIMITER = web.AppKey("limiter", LoginLimiter)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
SESSION = web.RequestKey("session", Session)  # set by the sign-in middleware


def queue_of(request: web.Request) -> Queue:
    return request.app[QUEUE]
