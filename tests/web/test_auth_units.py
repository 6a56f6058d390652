"""Credentials and the login limiter, without a server (sessions: tests/web/test_signin.py)."""

from __future__ import annotations

from bot.web.auth import Credentials, LoginLimiter, safe_next_path


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_credentials_compare_and_hide() -> None:
    credentials = Credentials(["s3cret", None, ""])
    assert credentials.check("s3cret")
    assert not credentials.check("s3cre") and not credentials.check("")
    assert "s3cret" not in repr(credentials)
    assert not Credentials([None])


def test_login_limiter_window() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(attempts=3, window_seconds=60, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("1.2.3.4") == 0
        limiter.record_failure("1.2.3.4")
        clock.now += 1
    assert 0 < limiter.retry_after("1.2.3.4") <= 60
    assert limiter.retry_after("5.6.7.8") == 0  # per address
    clock.now += 58
    assert limiter.retry_after("1.2.3.4") == 0  # the oldest failure aged out


def test_safe_next_path() -> None:
    assert safe_next_path("/history?q=cat") == "/history?q=cat"
    for bad in (None, "", "//evil.example", "https://evil.example", "/\\evil", "evil"):
        assert safe_next_path(bad) == "/"
