"""Sign in with Discord and with Slack, and the gallery, in real headless Chromium against the fakes'
OAuth pages: a member sees only their own pictures, a guild admin sees their guild's usage and not
another guild's, someone else's picture is 404 and another guild's page 403, the session survives a
dashboard restart and is gone after sign-out. Screenshots of the gallery and the admin view go to
IMAGINE_TEST_SCREENSHOTS (default artifacts/screenshots/, not committed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from slack_sdk.oauth.installation_store import Installation

from bot.web import texts
from bot.web.app import create_app
from jobs.db import connect
from jobs.models import Job
from jobs.queue import Queue
from jobs.settings import Settings, load_settings
from jobs.slack_installs import SlackInstallations
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.web.browser import chromium, fresh_page, require_browser, screenshot
from tests.web.data import WEB_LIMITS, done_job
from tests.web.helpers import PASSWORD

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="module")]

MANAGE_GUILD = 1 << 5


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    require_browser()
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="module")
async def discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest_asyncio.fixture(loop_scope="module")
async def queue(db_url: str) -> AsyncIterator[Queue]:
    engine = connect(db_url)
    yield Queue(engine=engine, limits=WEB_LIMITS)
    await engine.dispose()


@pytest.fixture
def discord_settings(db_url: str, discord: FakeDiscord) -> Settings:
    return load_settings(
        env_file=None,
        database_url=db_url,
        dashboard_enabled=True,
        dashboard_password=PASSWORD,
        discord_token=discord.token,
        discord_application_id=discord.application_id,
        discord_client_secret=discord.client_secret,
        discord_api_url=discord.api_base,
    )


async def picture_of(queue: Queue, user: Any, guild: Any, prompt: str, *, hours_ago: int) -> Job:
    return await done_job(
        queue,
        prompt,
        str(user.id),
        at=datetime.now(UTC) - timedelta(hours=hours_ago),
        user_name=user.username,
        guild_id=str(guild.id),
        channel_id=str(guild.channel_ids[0]),
    )


async def slack_picture(queue: Queue, user_id: str, team_id: str, prompt: str) -> Job:
    at = datetime.now(UTC) - timedelta(minutes=5)
    return await done_job(queue, prompt, user_id, at=at, platform="slack", guild_id=team_id, channel_id="C1")


async def dashboard(settings: Settings, queue: Queue) -> TestServer:
    server = TestServer(create_app(settings=settings, queue=queue), host="127.0.0.1")
    await server.start_server()
    return server


async def test_sign_in_with_discord_gallery_guild_admin_and_the_session(
    browser: Any, discord: FakeDiscord, discord_settings: Settings, queue: Queue
) -> None:
    alice, bob, carol = discord.user, discord.add_user("bob"), discord.add_user("carol")
    home, other = discord.guild, discord.add_guild("Other Server")
    discord.join(alice, home, permissions=MANAGE_GUILD)  # alice manages `home`…
    discord.join(alice, other)  # …and is a plain member of `other`
    discord.join(carol, other, permissions=MANAGE_GUILD)
    lantern = await picture_of(queue, alice, home, "a lantern in the fog", hours_ago=4)  # not posted yet
    kite = await picture_of(queue, alice, home, "a red kite over the dunes", hours_ago=3)
    posted_in, message_id = str(home.channel_ids[0]), "1180000000000000042"
    await queue.mark_delivered(kite.id, final_message_id=message_id, final_channel_id=posted_in)
    await picture_of(queue, bob, home, "a paper boat on a lake", hours_ago=2)
    castle = await picture_of(queue, carol, other, "a castle in the clouds", hours_ago=1)

    first = await dashboard(discord_settings, queue)
    async with fresh_page(browser) as page:
        base = str(first.make_url("")).rstrip("/")
        discord.sign_in_browser_as(alice)
        await page.goto(base + "/gallery")
        assert "/login" in page.url
        await page.click("text=Sign in with Discord")
        await page.wait_for_url(lambda url: "/oauth2/authorize" in url)  # the fake Discord's consent page
        assert "identify guilds" in await page.content()
        await page.click("text=Authorize")
        await page.wait_for_url(lambda url: url.endswith("/gallery"))

        text = await page.inner_text("main")
        assert "a red kite over the dunes" in text  # her own picture…
        assert "a paper boat" not in text and "a castle" not in text  # …only hers
        brand = await page.inner_text(".brand")
        assert brand.startswith("imagine") and alice.username in brand and "admin" not in brand
        card = page.locator(f"figure[data-job='{kite.id}']")
        shown = await card.locator("img").evaluate_all(
            "els => els.map(e => [e.dataset.index, e.complete && e.naturalWidth > 0])"
        )
        assert shown == [["-1", True], ["0", True], ["1", True]]  # the grid and each image, loaded
        scores = await card.locator(".score").all_inner_texts()
        assert scores == ["CLIP 0.310", "CLIP 0.290"]  # each image's score, best first
        downloads = await card.locator("a[download]").evaluate_all("els => els.map(e => e.pathname)")
        assert sorted(downloads) == sorted(f"/gallery/{kite.id}/{index}.png" for index in (-1, 0, 1))
        chat = await card.locator("a.chat-link").get_attribute("href")
        assert chat == f"https://discord.com/channels/{home.id}/{posted_in}/{message_id}"
        assert await page.locator(f"figure[data-job='{lantern.id}'] a.chat-link").count() == 0
        await screenshot(page, "gallery")

        await page.click(f"a[href='/guild/discord/{home.id}']")  # the server she manages
        await page.wait_for_url(lambda url: f"/guild/discord/{home.id}" in url)
        text = await page.inner_text("main")
        assert f"Discord server {home.id}" in text and "guild/workspace" not in text
        assert "a paper boat on a lake" in text and "bob" in text and "a castle" not in text
        await page.fill("#ban-user", str(bob.id))  # moderation of her own server
        await page.fill("#ban-reason", "spam")
        await page.click("button:has-text('Ban here')")
        await page.wait_for_url(lambda url: url.endswith(f"/guild/discord/{home.id}"))
        assert "spam" in await page.inner_text("main")
        [ban] = await queue.bans("discord", str(home.id))
        assert (ban.user_id, ban.guild_id, ban.banned_by) == (
            str(bob.id),
            str(home.id),
            f"discord:{alice.id}",
        )
        await screenshot(page, "guild-admin")
        csrf = await page.locator("input[name=csrf_token]").first.get_attribute("value")
        refused = await page.request.post(
            f"{base}/guild/discord/{other.id}/ban", form={"csrf_token": csrf or "", "user_id": str(carol.id)}
        )
        assert refused.status == 403 and await queue.bans("discord", str(other.id)) == []
        assert f"/guild/discord/{other.id}" not in await page.content()

        answers = {
            path: (await page.request.get(base + path, max_redirects=0)).status
            for path in (
                f"/gallery/{kite.id}/-1.png",  # hers: served
                f"/gallery/{kite.id}/1.png",
                f"/gallery/{castle.id}/-1.png",  # carol's, in a server she does not manage: not found
                f"/gallery/{castle.id}/0.png",
                f"/guild/discord/{other.id}",  # a server she does not manage
                "/history",  # the operator's pages
                "/moderation",
            )
        }
        assert answers == {
            f"/gallery/{kite.id}/-1.png": 200,
            f"/gallery/{kite.id}/1.png": 200,
            f"/gallery/{castle.id}/-1.png": 404,
            f"/gallery/{castle.id}/0.png": 404,
            f"/guild/discord/{other.id}": 403,
            "/history": 403,
            "/moderation": 403,
        }

        await first.close()  # the dashboard restarts: the session is in the database
        second = await dashboard(discord_settings, queue)
        try:
            base = str(second.make_url("")).rstrip("/")
            await page.goto(base + "/gallery")
            assert page.url.endswith("/gallery") and "a red kite" in await page.inner_text("main")
            await page.click(f"figure[data-job='{kite.id}'] button:has-text('Delete')")  # her own pictures
            await page.wait_for_url(lambda url: url.endswith("/gallery"))
            assert "Deleted" in await page.inner_text("main")
            assert await page.locator(f"figure[data-job='{kite.id}']").count() == 0  # its card is gone…
            loaded = await page.locator("img").evaluate_all("els => els.map(e => e.naturalWidth > 0)")
            assert loaded == [True, True, True]  # …and no broken image is left: the lantern's three
            for index in (-1, 0, 1):
                assert (await page.request.get(f"{base}/gallery/{kite.id}/{index}.png")).status == 404
            await page.click("button.signout")
            await page.wait_for_url(lambda url: "/login" in url)
            await page.goto(base + "/gallery")
            assert "/login" in page.url  # signed out: the session is gone
        finally:
            await second.close()


async def test_a_forged_state_is_refused(discord_settings: Settings, queue: Queue) -> None:
    async with TestClient(TestServer(create_app(settings=discord_settings, queue=queue))) as client:
        start = await client.get("/login/discord", allow_redirects=False)
        assert start.status == 302 and "state=" in start.headers["Location"]
        response = await client.get(
            "/login/discord/callback?code=abc&state=not-the-one", allow_redirects=False
        )
        assert response.status == 403
        assert await queue.find_session("anything") is None


async def test_sign_in_with_slack_sees_own_pictures_and_the_workspace_it_administers(
    browser: Any, db_url: str, queue: Queue
) -> None:
    async with FakeSlack() as slack:
        settings = load_settings(
            env_file=None,
            database_url=db_url,
            dashboard_enabled=True,
            dashboard_password=PASSWORD,
            slack_client_id=slack.client_id,
            slack_client_secret=slack.client_secret,
            slack_api_url=slack.api_url,
        )
        installations = SlackInstallations.of_queue(queue, client_id=slack.client_id)
        await installations.installation_store.async_save(  # T1 installed the app; T2 did not
            Installation(app_id=slack.app_id, team_id="T1", user_id="U0ADMIN", bot_token=slack.bot_token)
        )
        slack.add_user("U1DANA", name="dana", is_admin=True)
        mine = await done_job(
            queue,
            "a lighthouse at dawn",
            "U1DANA",
            at=datetime.now(UTC),
            platform="slack",
            guild_id="T1",
            channel_id="C1",
        )
        await done_job(
            queue,
            "a teapot in space",
            "U1ERIK",
            at=datetime.now(UTC),
            platform="slack",
            guild_id="T1",
            channel_id="C1",
        )
        await queue.mark_delivered(mine.id, final_message_id="1764000000.000100")  # the buttons' ts
        elsewhere = await done_job(
            queue,
            "a fox in the snow",
            "U2FINN",
            at=datetime.now(UTC),
            platform="slack",
            guild_id="T2",
            channel_id="C2",
        )
        server = await dashboard(settings, queue)
        try:
            async with fresh_page(browser) as page:
                base = str(server.make_url("")).rstrip("/")
                slack.sign_in_browser_as("U1DANA", team_id="T1", name="dana")
                await page.goto(base + "/login")
                await page.click("text=Sign in with Slack")
                await page.wait_for_url(lambda url: "/openid/connect/authorize" in url)
                await page.click("text=Allow")
                await page.wait_for_url(lambda url: url.endswith("/gallery"))
                text = await page.inner_text("main")
                assert "a lighthouse at dawn" in text and "a teapot" not in text and "a fox" not in text
                assert await page.inner_text(".brand") == "imagine dana"
                # no stored ref holds the workspace's subdomain a permalink needs: the channel's deep link
                chat = await page.locator(f"figure[data-job='{mine.id}'] a.chat-link").get_attribute("href")
                assert chat == "slack://channel?team=T1&id=C1"
                answers = {
                    path: (await page.request.get(base + path, max_redirects=0)).status
                    for path in (
                        f"/gallery/{mine.id}/-1.png",
                        f"/gallery/{elsewhere.id}/-1.png",
                        "/guild/slack/T1",  # she is an admin of T1, where the app is installed
                        "/guild/slack/T2",
                    )
                }
                assert list(answers.values()) == [200, 404, 200, 403]
                await page.goto(base + "/guild/slack/T1")
                text = await page.inner_text("main")
                assert "a teapot in space" in text and "Slack workspace T1" in text

            for forgery, problem in (
                ({"nonce": "someone-elses"}, "Invalid claim: 'nonce'"),
                (
                    {"foreign_key": True},
                    "bad signature",
                ),
            ):
                async with fresh_page(browser) as page:
                    slack.forge_next_id_token(**forgery)
                    await page.goto(base + "/login")
                    await page.click("text=Sign in with Slack")
                    await page.click("text=Allow")
                    await page.wait_for_url(lambda url: "/login/slack/callback" in url)
                    assert texts.refused_slack_id_token(problem) in await page.inner_text("main")
                    await page.goto(base + "/gallery")
                    assert "/login" in page.url  # nobody was signed in
        finally:
            await server.close()
