"""Sign-in for the admin dashboard: credentials, sessions, CSRF tokens and the login rate limit.

Sessions live in this process's memory and their cookie carries only a random id signed with a per-process
key, so a restart signs every admin out (acceptable for an admin tool) and sign-out is a real revocation.
Every form carries the session's CSRF token; POSTs without it are refused by the middleware in `app.py`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Clock = Callable[[], float]


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
    expires_at: float
    # One-shot messages shown on the next page ("User 42 banned."): (kind, text), kind "ok" or "error".
    flashes: list[tuple[str, str]] = field(default_factory=list)

    def flash(self, kind: str, text: str) -> None:
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken


class SessionStore:
    """Signed-in sessions, looked up by the id in a signed cookie."""

    def __init__(
        self, *, lifetime_seconds: float, clock: Clock = time.time, key: bytes | None = None
    ) -> None:
        self._key = key or secrets.token_bytes(32)
        self._lifetime_seconds = lifetime_seconds
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def _sign(self, session_id: str) -> str:
        mac = hmac.new(self._key, session_id.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def start(self) -> tuple[Session, str]:
        """A new session and the cookie value that names it."""
        self._forget_expired()
        session = Session(
            session_id=secrets.token_urlsafe(32),
            csrf_token=secrets.token_urlsafe(32),
            expires_at=self._clock() + self._lifetime_seconds,
        )
        self._sessions[session.session_id] = session
        return session, f"{session.session_id}.{self._sign(session.session_id)}"

    def from_cookie(self, cookie_value: str | None) -> Session | None:
        """The live session a cookie names, or None for a missing, forged, unknown or expired one."""
        if not cookie_value or cookie_value.count(".") != 1:
            return None
        session_id, signature = cookie_value.split(".")
        try:
            expected = self._sign(session_id)
        except UnicodeEncodeError:
            return None
        if not hmac.compare_digest(signature.encode("ascii", "replace"), expected.encode("ascii")):
            return None
        session = self._sessions.get(session_id)
        if session is None or session.expires_at <= self._clock():
            self._sessions.pop(session_id, None)
            return None
        return session

    def end(self, session: Session) -> None:
        self._sessions.pop(session.session_id, None)

    def _forget_expired(self) -> None:
        now = self._clock()
        for session_id in [sid for sid, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[session_id]


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
