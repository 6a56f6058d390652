"""Reading query strings and forms: lenient for filters (a bad value is ignored and said so), strict for
actions (a bad value is refused with a message)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from bot.web.keys import SESSION


def text(values: Mapping[str, Any], name: str, *, limit: int = 200) -> str:
    value = values.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def day(values: Mapping[str, Any], name: str) -> date | None:
    """A YYYY-MM-DD value, or None when empty or malformed."""
    raw = text(values, name, limit=10)
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def start_of(day_: date | None) -> datetime | None:
    return datetime(day_.year, day_.month, day_.day, tzinfo=UTC) if day_ else None


def end_of(day_: date | None) -> datetime | None:
    """The instant after the day ends (filters use `created_at < end`)."""
    return start_of(day_ + timedelta(days=1)) if day_ else None


def integer(values: Mapping[str, Any], name: str, *, default: int, low: int, high: int) -> int:
    try:
        number = int(text(values, name, limit=12) or default)
    except ValueError:
        return default
    return min(high, max(low, number))


def optional_integer(
    values: Mapping[str, Any], name: str, *, low: int = 0, high: int | None = None
) -> int | None:
    """An optional whole number for an action form; raises ValueError with a sentence for the admin."""
    raw = text(values, name, limit=12)
    if not raw:
        return None
    try:
        number = int(raw)
    except ValueError:
        raise ValueError(f"{name.replace('_', ' ')} must be a whole number, got {raw!r}") from None
    if number < low:
        raise ValueError(f"{name.replace('_', ' ')} must be {low} or more, got {number}")
    if high is not None and number > high:
        raise ValueError(f"{name.replace('_', ' ')} must be {high} or less, got {number}")
    return number


def word_list(values: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """Items separated by commas or new lines, trimmed, duplicates and empties dropped, order kept."""
    raw = values.get(name, "")
    if not isinstance(raw, str):
        return ()
    items = [item.strip() for line in raw.splitlines() for item in line.split(",")]
    return tuple(dict.fromkeys(item for item in items if item))


def back(request: web.Request, kind: str, message: str, *, to: str) -> web.HTTPFound:
    """Post/redirect/get: remember a one-shot message for the next page and go there."""
    request[SESSION].flash(kind, message)
    return web.HTTPFound(to)
