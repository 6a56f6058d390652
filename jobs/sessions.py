"""Dashboard sessions in the database. Part of `Queue` (see `jobs/queue.py`).

A session is a row: it survives a restart of the dashboard (or is shared by several), is revoked by
deleting the row (sign-out) and expires at `expires_at`. The cookie carries a random id; the table keeps
only its SHA-256, so reading the table does not give anyone a live cookie.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobs import queries as q
from jobs.base import QueueBase
from jobs.base import now_or_utcnow as _now


@dataclass(frozen=True, slots=True)
class WebSession:
    session_id: str  # the cookie's value (known only to whoever holds the cookie)
    account: str
    csrf_token: str
    expires_at: datetime
    user_name: str = ""
    grants: tuple[str, ...] = ()


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


class SessionsMixin(QueueBase):
    """Start, find and end dashboard sessions."""

    async def start_session(
        self,
        account: str,
        *,
        lifetime_seconds: float,
        user_name: str = "",
        grants: tuple[str, ...] = (),
        now: datetime | None = None,
    ) -> WebSession:
        now = _now(now)
        session = WebSession(
            session_id=secrets.token_urlsafe(32),
            account=account,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=now + timedelta(seconds=lifetime_seconds),
            user_name=user_name,
            grants=tuple(grants),
        )
        async with self._engine.begin() as conn:
            await conn.execute(q.delete_expired_sessions(now))
            await conn.execute(
                q.insert_session(),
                {
                    "id_hash": _hash(session.session_id),
                    "account": account,
                    "user_name": user_name,
                    "grants": list(grants),
                    "csrf_token": session.csrf_token,
                    "created_at": now,
                    "expires_at": session.expires_at,
                },
            )
        return session

    async def find_session(self, session_id: str, *, now: datetime | None = None) -> WebSession | None:
        """The live session of this cookie value; None for an unknown, ended or expired one."""
        async with self._reading() as conn:
            row = (await conn.execute(q.live_session(_hash(session_id), _now(now)))).first()
        if row is None:
            return None
        return WebSession(
            session_id, row.account, row.csrf_token, row.expires_at, row.user_name, tuple(row.grants)
        )

    async def end_session(self, session_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(q.delete_session(_hash(session_id)))
