"""Sign-in for the admin dashboard: credentials, sessions, CSRF tokens and the login rate limit.

Sessions live in the database (`jobs/sessions.py`): the cookie carries only a random id, a session
survives a restart of the dashboard, expires after `session_seconds`, and sign-out deletes it (a real
revocation, on every dashboard process at once). Every form carries the session's CSRF token; POSTs
without it are refused by the middleware in `app.py`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Clock = Callable[[], float]
OPERATOR = "operator"  # the account of whoever signs in with the dashboard password
MAX_COOKIE_LENGTH = 128  # a session id is 43 characters; anything much longer is not one of ours


def _digest(value: str) -> bytes:
    # Comparing fixed-length digests keeps compare_digest's timing independent of the secret's length.
    return hashlib.sha256(value.encode("utf-8")).digest()


class Credentials:
    """The admin password and/or token, kept only as SHA-256 digests."""

    def __init__(self, secrets_: Iterable[str | None]) -> None:
        self._digests = [_digest(s) for s in secrets_ if s]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def __repr__(self) -> str:
        return f"Credentials(<{len(self._digests)} secret(s)>)"

    def check(self, given: str) -> bool:
        """True when `given` equals one of the secrets; every secret is compared, whatever matched."""
        given_digest = _digest(given)
        matched = False
        for expected in self._digests:
            matched |= hmac.compare_digest(given_digest, expected)
        return matched


@dataclass
class Session:
    session_id: str
    csrf_token: str
    account: str  # "operator" (the dashboard password) or "<platform>:<user id>" (platform sign-in)
    user_name: str = ""
    grants: tuple[str, ...] = ()  # "<platform>:<guild id>" of the servers whose admin pages it may see
    # One-shot messages shown on the next page ("User 42 banned."): (kind, text), kind "ok" or "error".
    flashes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def is_operator(self) -> bool:
        return self.account == OPERATOR

    @property
    def platform_user(self) -> tuple[str, str] | None:
        """(platform, user id) of a platform sign-in; None for the operator."""
        platform, _, user_id = self.account.partition(":")
        return (platform, user_id) if user_id else None

    def flash(self, kind: str, text: str) -> None:
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken = list(self.flashes)
        self.flashes.clear()
        return taken


class SessionStore:
    """Signed-in sessions, kept in the database (`jobs/sessions.py`) and named by the cookie's random id.

    Flashes are the one thing kept in this process: a message lives from a POST to the page it redirects
    to, so losing one to a restart costs nothing."""

    def __init__(
        self, queue: Any, *, lifetime_seconds: float, now: Callable[[], datetime] | None = None
    ) -> None:
        self._queue = queue
        self._lifetime_seconds = lifetime_seconds
        self._now = now or (lambda: datetime.now(UTC))
        self._flashes: dict[str, list[tuple[str, str]]] = {}

    async def start(
        self, account: str = OPERATOR, *, user_name: str = "", grants: tuple[str, ...] = ()
    ) -> tuple[Session, str]:
        """A new session and the cookie value that names it."""
        row = await self._queue.start_session(
            account,
            lifetime_seconds=self._lifetime_seconds,
            user_name=user_name,
            grants=grants,
            now=self._now(),
        )
        return self._session(row), row.session_id

    async def from_cookie(self, cookie_value: str | None) -> Session | None:
        """The live session a cookie names, or None for a missing, unknown, ended or expired one."""
        if not cookie_value or len(cookie_value) > MAX_COOKIE_LENGTH:
            return None
        row = await self._queue.find_session(cookie_value, now=self._now())
        if row is None:
            self._flashes.pop(cookie_value, None)
            return None
        return self._session(row)

    async def end(self, session: Session) -> None:
        await self._queue.end_session(session.session_id)
        self._flashes.pop(session.session_id, None)

    def _session(self, row: Any) -> Session:
        flashes = self._flashes.setdefault(row.session_id, [])
        return Session(row.session_id, row.csrf_token, row.account, row.user_name, row.grants, flashes)

    @property
    def lifetime_seconds(self) -> float:
        return self._lifetime_seconds


@dataclass
class LoginLimiter:
    """At most `attempts` failed sign-ins per client address in any `window_seconds`."""

    attempts: int
    window_seconds: float
    clock: Clock = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may try now."""
        failures = self._recent(client)
        if len(failures) < self.attempts:
            return 0.0
        return max(0.0, failures[0] + self.window_seconds - self.clock())

    def record_failure(self, client: str) -> None:
        self._recent(client).append(self.clock())
        if len(self._failures) > 10_000:
            # Bound memory under a spray from many addresses: drop clients with no recent failure.
            for other in [c for c in self._failures if not self._recent(c)]:
                del self._failures[other]

    def forget(self, client: str) -> None:
        self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        horizon = self.clock() - self.window_seconds
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures


def new_login_token() -> str:
    """A token for the sign-in form, checked against a cookie of the same value (double submit)."""
    return secrets.token_urlsafe(32)


def tokens_match(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def safe_next_path(candidate: str | None) -> str:
    """Where to go after sign-in: a path on this site only (no open redirect to `//evil` or `https:`)."""
    if not candidate or not candidate.startswith("/") or candidate.startswith("//") or "\\" in candidate:
        return "/"
    return candidate
