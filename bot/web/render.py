"""Jinja2 environment and the one function every page uses to answer with a template."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from bot.web.keys import SESSION, TEMPLATES
from jobs.durations import duration

TEMPLATE_DIR = Path(__file__).parent / "templates"

NAV = (
    ("/", "Usage"),
    ("/history", "History"),
    ("/live", "Live"),
    ("/moderation", "Moderation"),
    ("/try", "Try a prompt"),
)
PLATFORM_NAV = (("/gallery", "Your pictures"),)  # someone signed in with Discord


def format_time(value: datetime | None) -> str:
    """UTC, to the second: admins compare these with logs, which are UTC too."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_seconds(value: float | timedelta | None) -> str:
    return "—" if value is None else duration(value)


def format_ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    return f"{duration((now or datetime.now(UTC)) - value)} ago"


def make_environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a typo in a template is an error in the tests, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["time"] = format_time
    environment.filters["seconds"] = format_seconds
    environment.filters["ago"] = format_ago
    environment.globals["nav"] = NAV
    return environment


def render_text(request: web.Request, template: str, **context: Any) -> str:
    session = request.get(SESSION)
    context.setdefault("csrf_token", session.csrf_token if session else "")
    context.setdefault("flashes", session.take_flashes() if session else [])
    context.setdefault("signed_in", session is not None)
    context.setdefault("path", request.path)
    context.setdefault("nav", NAV if session is None or session.is_operator else PLATFORM_NAV)
    # "imagine admin" is the operator's; a platform user sees whom they are signed in as.
    context.setdefault(
        "viewer", session.user_name or session.account if session and not session.is_operator else ""
    )
    return request.app[TEMPLATES].get_template(template).render(**context)


def render_fragment(request: web.Request, template: str, **context: Any) -> str:
    """A partial for live refresh: needs the CSRF token (it may hold forms) but must not eat flashes."""
    session = request.get(SESSION)
    context.setdefault("csrf_token", session.csrf_token if session else "")
    return request.app[TEMPLATES].get_template(template).render(**context)


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    return web.Response(
        text=render_text(request, template, **context), status=status, content_type="text/html"
    )
