"""What the dashboard reads from `jobs.settings.Settings`, gathered once in `main()` and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobs.errors import SettingsError

SESSION_SECONDS = 12 * 3600  # an admin signs in again after half a day
LOGIN_ATTEMPTS = 5  # failed sign-ins allowed per client address…
LOGIN_WINDOW_SECONDS = 300.0  # …in this many seconds; then 429 until the oldest failure ages out


@dataclass(frozen=True, kw_only=True)
class DashboardConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    password: str = field(repr=False)
    session_seconds: float = SESSION_SECONDS
    login_attempts: int = LOGIN_ATTEMPTS
    login_window_seconds: float = LOGIN_WINDOW_SECONDS
    # Set the cookie's Secure flag when the dashboard is served over HTTPS (behind a TLS proxy).
    secure_cookie: bool = False
    models: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> DashboardConfig:
        """Read the dashboard_* settings; refuse to build a dashboard nobody can sign in to."""
        secret = settings.dashboard_password
        password = secret.get_secret_value() if secret is not None else ""
        if not password:
            raise SettingsError("IMAGINE_DASHBOARD_PASSWORD must be set to serve the admin dashboard")
        values: dict[str, Any] = {
            "host": settings.dashboard_host,
            "port": settings.dashboard_port,
            "password": password,
        }
        values.update(overrides)
        return cls(**values)
