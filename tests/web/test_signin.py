"""Sign-in, sign-out, CSRF and the login rate limit, through aiohttp's test client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from bot.web.app import create_app
from bot.web.config import DashboardConfig
from jobs.db import connect
from jobs.queue import Queue
from tests.web.helpers import PASSWORD, csrf_from, sign_in


@pytest.fixture
async def engine_of_queue(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A second engine on the test's database, to break it underneath the dashboard."""
    engine = connect(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def bare_client(queue: Queue) -> AsyncIterator[TestClient]:
    """A dashboard on an empty database: enough for sign-in and pages that read nothing."""
    config = DashboardConfig(password=PASSWORD, login_attempts=3, login_window_seconds=60)
    app = create_app(settings=None, queue=queue, config=config)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_signed_out_pages_redirect_to_sign_in(bare_client: TestClient) -> None:
    response = await bare_client.get("/history?q=cat", allow_redirects=False)
    assert response.status == 302
    location = URL(response.headers["Location"])
    assert location.path == "/login" and location.query["next"] == "/history?q=cat"


async def test_signed_out_json_and_posts_get_401(bare_client: TestClient) -> None:
    response = await bare_client.get("/live.json", headers={"Accept": "application/json"})
    assert response.status == 401
    response = await bare_client.post("/moderation/ban", data={"user_id": "1"})
    assert response.status == 401


async def test_healthz_and_static_are_public(client: TestClient) -> None:
    """Signed out: /healthz asks the database (200), the static files need no session either."""
    assert (await client.get("/healthz")).status == 200
    css = await client.get("/static/style.css")
    assert css.status == 200 and "text/css" in css.headers["Content-Type"]
    assert (await client.get("/static/live.js")).status == 200


async def test_sign_in_sets_a_strict_http_only_cookie(bare_client: TestClient) -> None:
    form_page = await bare_client.get("/login")
    token = csrf_from(await form_page.text())
    response = await bare_client.post(
        "/login", data={"csrf_token": token, "password": PASSWORD, "next": "/live"}, allow_redirects=False
    )
    assert response.status == 302 and response.headers["Location"] == "/live"
    cookie = next(h for h in response.headers.getall("Set-Cookie") if h.startswith("imagine_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert PASSWORD not in cookie


async def test_wrong_password_is_refused(bare_client: TestClient) -> None:
    assert await sign_in(bare_client, password="wrong") == 401
    assert (await bare_client.get("/", allow_redirects=False)).status == 302


async def test_sign_in_form_needs_its_csrf_token(bare_client: TestClient) -> None:
    await bare_client.get("/login")
    response = await bare_client.post("/login", data={"csrf_token": "forged", "password": PASSWORD})
    assert response.status == 403
    assert (await bare_client.get("/", allow_redirects=False)).status == 302


async def test_open_redirects_are_refused(bare_client: TestClient) -> None:
    assert await sign_in(bare_client, next_path="//evil.example/") == 302
    # already signed in: /login forwards to the safe path
    response = await bare_client.get("/login?next=https://evil.example", allow_redirects=False)
    assert response.headers["Location"] == "/"


async def test_login_rate_limit_per_address(bare_client: TestClient) -> None:
    for _ in range(3):
        assert await sign_in(bare_client, password="wrong") == 401
    # even the right password is refused while the address is limited
    assert await sign_in(bare_client) == 429
    response = await bare_client.post("/login", data={"password": PASSWORD})
    assert response.status == 429 and int(response.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in await response.text()


async def test_post_without_csrf_token_is_forbidden(client: TestClient) -> None:
    assert await sign_in(client) == 302
    response = await client.post("/logout", data={}, allow_redirects=False)
    assert response.status == 403
    response = await client.post("/logout", data={"csrf_token": "nope"}, allow_redirects=False)
    assert response.status == 403
    assert (await client.get("/healthz")).status == 200


async def test_sign_out_ends_the_session(bare_client: TestClient) -> None:
    assert await sign_in(bare_client) == 302
    page = await bare_client.get("/this-page-does-not-exist")
    assert page.status == 404 and "Not found" in await page.text()
    token = csrf_from(await page.text())  # the error page keeps the sign-out form
    response = await bare_client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/login"
    assert (await bare_client.get("/", allow_redirects=False)).status == 302


async def test_security_headers(bare_client: TestClient) -> None:
    response = await bare_client.get("/login")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


async def test_a_failing_page_says_so_and_logs(
    bare_client: TestClient, engine_of_queue: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    assert await sign_in(bare_client) == 302
    async with engine_of_queue.begin() as conn:  # the jobs are gone from under the dashboard: pages fail
        await conn.execute(text("DROP TABLE images"))
        await conn.execute(text("DROP TABLE jobs"))
    response = await bare_client.get("/history")
    assert response.status == 500
    assert "the details are in the dashboard" in await response.text()
    assert "dashboard page /history failed" in caplog.text
    response = await bare_client.get("/live.json", headers={"Accept": "application/json"})
    assert response.status == 500 and "Traceback" not in await response.text()


async def test_sign_ins_are_logged_as_data(bare_client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="bot.web")
    await sign_in(bare_client, password="wrong")
    await sign_in(bare_client)
    actions = [getattr(record, "action", None) for record in caplog.records]
    assert actions == ["dashboard_sign_in_failed", "dashboard_signed_in"]
    assert all(PASSWORD not in record.getMessage() for record in caplog.records)


async def test_a_session_survives_a_restart_is_revoked_at_sign_out_and_expires(queue: Queue) -> None:
    clock = {"now": datetime.now(UTC)}
    config = DashboardConfig(password=PASSWORD, session_seconds=3600)

    def dashboard() -> TestClient:  # a fresh process: nothing in memory, the same database
        return TestClient(
            TestServer(create_app(settings=None, queue=queue, config=config, now=lambda: clock["now"]))
        )

    async with dashboard() as first:
        assert await sign_in(first) == 302
        cookie = first.session.cookie_jar.filter_cookies(first.make_url("/"))["imagine_session"].value
    async with dashboard() as second:  # the dashboard restarted: the admin is still signed in
        second.session.cookie_jar.update_cookies({"imagine_session": cookie}, second.make_url("/"))
        assert (await second.get("/", allow_redirects=False)).status == 200
        clock["now"] += timedelta(seconds=3601)  # past its lifetime: gone
        assert (await second.get("/", allow_redirects=False)).status == 302
        clock["now"] -= timedelta(seconds=3601)
        token = csrf_from(await (await second.get("/")).text())
        assert (await second.post("/logout", data={"csrf_token": token}, allow_redirects=False)).status == 302
    async with dashboard() as third:  # signed out on one process: revoked everywhere
        third.session.cookie_jar.update_cookies({"imagine_session": cookie}, third.make_url("/"))
        assert (await third.get("/", allow_redirects=False)).status == 302
    assert await queue.find_session(cookie) is None
