"""`run_slack` — what `imagine serve` starts — in Socket Mode (the default) and in HTTP mode, and the
App Home tab, all against the fake Slack."""

from __future__ import annotations

import time
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.frontends import enabled_frontends
from bot.slack.app import run_slack
from jobs.errors import SettingsError
from jobs.queue import Queue
from jobs.settings import load_settings
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_apps import SlackEventsDriver
from tests.slack.imagine.harness import CHANNEL, TEST_ACK_DEADLINE_SECONDS, USER, SlackBot


def settings(**values: Any) -> Any:
    return load_settings(env_file=None, **values)


async def test_socket_mode_round_trip(
    fake_slack: FakeSlack, bot_client: AsyncWebClient, queue: Queue
) -> None:
    await queue.worker_heartbeat("w", device="cpu", model="m", batch_images=8)
    configured = settings(slack_bot_token="xoxb-test", slack_app_token="xapp-test")
    assert "slack" in [frontend.name for frontend in enabled_frontends(configured)]
    async with run_slack(
        configured, queue, client=bot_client, ack_deadline_seconds=TEST_ACK_DEADLINE_SECONDS
    ) as frontend:
        assert frontend.mode == "socket"
        started = time.monotonic()
        ack = await fake_slack.socket_send_slash_command(
            "/imagine", "a paper boat --seed 2", channel_id=CHANNEL
        )
        assert time.monotonic() - started < 3.0
        assert ack.payload is not None and "position 1" in ack.payload["text"]
        await fake_slack.wait_until(lambda: fake_slack.messages_in(CHANNEL), what="the placeholder")

        click = await fake_slack.socket_send_block_action(
            "imagine:info:1", channel_id=CHANNEL, message_ts=fake_slack.messages_in(CHANNEL)[0].ts
        )
        assert click.payload is None  # a bare ack
        answered = await fake_slack.wait_until(
            lambda: [url for url in fake_slack.response_urls.values() if url.bodies], what="the parameters"
        )
        assert "*Seed:* 2" in answered[0].bodies[0]["text"]
    assert fake_slack.calls[0].method == "apps.connections.open" and fake_slack.calls[0].token == "xapp-test"
    assert fake_slack.socket_connection_count == 0  # closed on exit


async def test_http_mode_serves_signed_requests_only(
    fake_slack: FakeSlack, bot_client: AsyncWebClient, queue: Queue, signing_secret: str
) -> None:
    await queue.worker_heartbeat("w", device="cpu", model="m", batch_images=8)
    configured = settings(slack_bot_token="xoxb-test", slack_signing_secret=signing_secret)
    async with run_slack(
        configured,
        queue,
        client=bot_client,
        http_host="127.0.0.1",
        http_port=0,
        ack_deadline_seconds=TEST_ACK_DEADLINE_SECONDS,
    ) as frontend:
        assert frontend.mode == "http" and frontend.url and frontend.url.endswith("/slack/events")
        driver = SlackEventsDriver(fake_slack, events_url=frontend.url, signing_secret=signing_secret)
        try:
            forged = await driver.send_slash_command(
                "/imagine", "a fox", channel_id=CHANNEL, bad_signature=True
            )
            replayed = await driver.send_slash_command(
                "/imagine", "a fox", channel_id=CHANNEL, timestamp_skew=-400
            )
            good = await driver.send_slash_command("/imagine", "a fox", channel_id=CHANNEL)
        finally:
            await driver.aclose()
    assert (forged.status, replayed.status, good.status) == (401, 401, 200)
    assert "position 1" in good.text
    assert [job.id for job in await queue.jobs_for_user("slack", USER)] == [1]


async def test_missing_mode_credentials_say_which_variables(queue: Queue) -> None:
    with pytest.raises(SettingsError, match=r"IMAGINE_SLACK_APP_TOKEN .* or IMAGINE_SLACK_SIGNING_SECRET"):
        async with run_slack(settings(slack_bot_token="xoxb-test"), queue):
            pass
    with pytest.raises(SettingsError, match="IMAGINE_SLACK_BOT_TOKEN"):
        async with run_slack(settings(), queue):
            pass


async def test_app_home_shows_recent_pictures_and_usage_for_admins(
    fake_slack: FakeSlack, bot: SlackBot, slack_socket_mode: Any
) -> None:
    fake_slack.add_user(USER)
    fake_slack.add_user("U0ADMIN", is_owner=True)
    await bot.slack.send_slash_command("/imagine", "a tin robot --images 2", channel_id=CHANNEL, user_id=USER)
    await bot.wait_placeholder(1)
    await bot.render_next()
    await bot.deliver()
    await bot.slack.send_slash_command("/imagine", "a second robot", channel_id=CHANNEL, user_id=USER)
    await bot.wait_placeholder(2)
    await slack_socket_mode(bot.app)  # the same app, also on the socket: events arrive there

    async def open_home(user_id: str) -> dict[str, Any]:
        event = {"type": "app_home_opened", "user": user_id, "channel": "D0HOME", "tab": "home"}
        await fake_slack.socket_send(
            "events_api",
            {
                "type": "event_callback",
                "team_id": fake_slack.team_id,
                "api_app_id": fake_slack.app_id,
                "event": event,
                "event_id": f"Ev{user_id}",
                "event_time": int(time.time()),
            },
            accepts_response_payload=False,
        )
        return await fake_slack.wait_until(lambda: fake_slack.home_views.get(user_id), what="the home view")

    view = await open_home(USER)
    texts = [block.get("text", {}).get("text", "") for block in view["blocks"]]
    assert any("Your 2 most recent pictures" in text for text in texts)
    assert any("job 2" in text and "⏳" in text for text in texts) and any(
        "job 1" in text and "✅" in text for text in texts
    )
    job = await bot.queue.get_job(1)
    [image] = [block for block in view["blocks"] if block["type"] == "image"]
    assert (
        image["slack_file"] == {"id": job.refs.extra["grid_file_id"]} and image["alt_text"] == "a tin robot"
    )
    assert not any("usage" in text.lower() and "admins only" in text for text in texts)

    admin_view = await open_home("U0ADMIN")
    admin_texts = [block.get("text", {}).get("text", "") for block in admin_view["blocks"]]
    assert any("admins only" in text for text in admin_texts)
    assert any("2 jobs · 6 images asked for · 1 done" in text for text in admin_texts)


def test_the_generator_gets_a_slack_poster_when_a_bot_token_is_set() -> None:
    from bot.posters import make_posters
    from bot.slack.poster import SlackPoster

    assert "slack" not in make_posters(settings())
    assert isinstance(make_posters(settings(slack_bot_token="xoxb-test"))["slack"], SlackPoster)
    http_only = settings(slack_bot_token="xoxb-test", slack_signing_secret="s")
    [slack] = [frontend for frontend in enabled_frontends(http_only) if frontend.name == "slack"]
    assert slack.load() is run_slack  # what `imagine serve` enters
    with pytest.raises(
        SettingsError, match=r"^set IMAGINE_SLACK_APP_TOKEN \(xapp-…, Socket Mode\) or IMAGINE_SLACK"
    ):
        enabled_frontends(
            settings(slack_bot_token="xoxb-test")
        )  # no mode: said at start, as docs/slack.md says


async def test_http_address_and_admins_come_from_settings(
    fake_slack: FakeSlack, bot_client: AsyncWebClient, queue: Queue, signing_secret: str
) -> None:
    configured = settings(
        slack_bot_token="xoxb-test",
        slack_signing_secret=signing_secret,
        slack_http_host="127.0.0.1",
        slack_http_port=0,
        slack_admin_user_ids="U0BOSS, U0DEPUTY",
    )
    async with run_slack(
        configured, queue, client=bot_client, ack_deadline_seconds=TEST_ACK_DEADLINE_SECONDS
    ) as frontend:
        assert frontend.url and frontend.url.startswith("http://127.0.0.1:")
        driver = SlackEventsDriver(fake_slack, events_url=frontend.url, signing_secret=signing_secret)
        try:
            response = await driver.send_slash_command("/imagine-settings", "", user_id="U0DEPUTY")
        finally:
            await driver.aclose()
    assert "settings for this workspace" in response.text
    assert fake_slack.calls_to("users.info") == []  # configured: Slack was not asked


async def test_every_command_of_the_manifest_is_answered(bot: SlackBot) -> None:
    from bot.slack.manifest import BOT_SCOPES, manifest

    socket = manifest()
    assert socket["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in socket["settings"]["interactivity"]
    assert set(socket["oauth_config"]["scopes"]["bot"]) == set(BOT_SCOPES)
    commands = socket["features"]["slash_commands"]
    assert commands[0]["usage_hint"] == "<prompt> [--images N] [--seed S] [--guidance G]"
    for entry in commands:
        assert 0 < len(entry["description"]) <= 100
        response = await bot.slack.send_slash_command(entry["command"], "--help", channel_id=CHANNEL)
        assert response.status == 200 and response.text, entry["command"]
    http = manifest(request_url="https://example.org/slack/events")
    assert http["settings"]["socket_mode_enabled"] is False
    assert {c["url"] for c in http["features"]["slash_commands"]} == {"https://example.org/slack/events"}
