"""The fake Slack, checked with a real Bolt `AsyncApp` and a real `AsyncWebClient`.

The app under test is a stand-in for the /imagine bot: ``/ping`` acks at once, posts a
placeholder, edits it, uploads a PNG with files_upload_v2 and posts Block Kit buttons; any
``imagine_*`` button answers through its response_url.
"""

import asyncio
import io
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from PIL import Image
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes.slack import (
    RESPONSE_URL_LIFETIME_SECONDS,
    UPLOAD_STEP,
    FakeSlack,
    iter_actions,
    iter_slack_files,
)
from tests.fakes.slack_apps import HttpStarter, SocketModeStarter, run_socket_mode, serve_http, web_client_for

CHANNEL = "C0CHAN"
WAIT_SECONDS = 5.0


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def buttons(count: int) -> list[dict[str, Any]]:
    elements = [
        {
            "type": "button",
            "action_id": f"imagine_pick_{i}",
            "value": str(i),
            "text": {"type": "plain_text", "text": f"U{i}"},
        }
        for i in range(1, count + 1)
    ]
    return [{"type": "actions", "block_id": "imagine_buttons", "elements": elements}]


@dataclass
class PingBot:
    """A Bolt app plus what its handlers did, for the test to wait on."""

    app: AsyncApp
    png: bytes
    commands_done: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    clicks: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    handler_runs: int = 0


def build_ping_bot(client: AsyncWebClient, signing_secret: str) -> PingBot:
    bot = PingBot(app=AsyncApp(client=client, signing_secret=signing_secret), png=png_bytes())

    @bot.app.command("/ping")
    async def ping(ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient) -> None:
        """Ack at once, then the slow part: placeholder → update → upload → buttons."""
        await ack(text="pong")
        bot.handler_runs += 1
        channel = command["channel_id"]
        placeholder = await client.chat_postMessage(channel=channel, text="Drawing…")
        await client.chat_update(channel=channel, ts=placeholder["ts"], text="Drawn")
        await client.files_upload_v2(
            channel=channel, file=bot.png, filename="grid.png", title="grid", initial_comment=command["text"]
        )
        await client.chat_postMessage(channel=channel, text="Pick one", blocks=buttons(4))
        await bot.commands_done.put(placeholder["ts"])

    @bot.app.action(re.compile("imagine_.*"))
    async def imagine_button(ack: AsyncAck, action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await respond(text=f"picked {action['value']}", replace_original=False)
        await bot.clicks.put(action)

    return bot


async def next_item(queue: asyncio.Queue[Any]) -> Any:
    return await asyncio.wait_for(queue.get(), WAIT_SECONDS)


def assert_ping_story(fake: FakeSlack, bot: PingBot, placeholder_ts: str) -> None:
    placeholder = fake.message(CHANNEL, placeholder_ts)
    assert placeholder.text == "Drawn"
    assert placeholder.history == [{"text": "Drawing…", "blocks": None}]

    [upload] = fake.completed_uploads(CHANNEL)
    assert upload.content == bot.png
    assert upload.filename == "grid.png"
    assert upload.initial_comment == "a red square"
    steps = [c for c in fake.calls if c.method.startswith("files.") or c.method == UPLOAD_STEP]
    assert [c.method for c in steps] == [
        "files.getUploadURLExternal",
        UPLOAD_STEP,
        "files.completeUploadExternal",
    ]
    assert steps[1].files["content"] == bot.png and steps[1].token is None
    assert steps[2].args["channel_id"] == CHANNEL

    buttons_message = fake.messages_in(CHANNEL)[-1]
    assert [a["action_id"] for a in iter_actions(buttons_message.blocks)] == [
        f"imagine_pick_{i}" for i in range(1, 5)
    ]


# -- HTTP mode ----------------------------------------------------------------------------------


async def test_http_slash_command_acks_fast_then_posts_updates_and_uploads(
    fake_slack: FakeSlack, slack_client: AsyncWebClient, signing_secret: str
) -> None:
    bot = build_ping_bot(slack_client, signing_secret)
    async with serve_http(bot.app, fake_slack, signing_secret=signing_secret) as slack:
        response = await slack.send_slash_command("/ping", "a red square", channel_id=CHANNEL)
        assert response.status == 200
        assert response.elapsed < 3.0
        assert response.text == "pong"  # Bolt answers a text-only ack as text/plain

        placeholder_ts = await next_item(bot.commands_done)
        assert_ping_story(fake_slack, bot, placeholder_ts)
        assert {call.token for call in fake_slack.calls if call.method != UPLOAD_STEP} == {"xoxb-test"}


@pytest.mark.parametrize(
    "tampering", [{"bad_signature": True}, {"timestamp_skew": -10 * 60}], ids=["bad-signature", "stale"]
)
async def test_http_unsigned_or_stale_requests_get_401_and_run_nothing(
    fake_slack: FakeSlack, slack_client: AsyncWebClient, signing_secret: str, tampering: dict[str, Any]
) -> None:
    bot = build_ping_bot(slack_client, signing_secret)
    async with serve_http(bot.app, fake_slack, signing_secret=signing_secret) as slack:
        command = await slack.send_slash_command("/ping", "x", channel_id=CHANNEL, **tampering)
        click = await slack.send_block_action("imagine_pick_1", "1", channel_id=CHANNEL, **tampering)

    assert (command.status, click.status) == (401, 401)
    assert bot.handler_runs == 0 and bot.clicks.empty()
    assert fake_slack.calls == []


async def test_http_block_action_is_routed_and_answers_on_response_url(
    fake_slack: FakeSlack, slack_client: AsyncWebClient, signing_secret: str, slack_http: HttpStarter
) -> None:
    bot = build_ping_bot(slack_client, signing_secret)
    slack = await slack_http(bot.app)
    response = await slack.send_block_action("imagine_pick_3", "3", channel_id=CHANNEL)
    assert response.status == 200

    action = await next_item(bot.clicks)
    assert (action["action_id"], action["value"]) == ("imagine_pick_3", "3")
    assert fake_slack.response_urls[response.response_url_id].bodies == [
        {"text": "picked 3", "replace_original": False}
    ]


async def test_http_429_is_retried_after_retry_after_and_posted_once(
    fake_slack: FakeSlack, signing_secret: str
) -> None:
    client = web_client_for(
        fake_slack,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            AsyncRateLimitErrorRetryHandler(max_retry_count=1),
        ],
    )
    bot = build_ping_bot(client, signing_secret)
    fake_slack.rate_limit("chat.postMessage", retry_after=1)
    async with serve_http(bot.app, fake_slack, signing_secret=signing_secret) as slack:
        response = await slack.send_slash_command("/ping", "a red square", channel_id=CHANNEL)
        assert response.status == 200
        placeholder_ts = await next_item(bot.commands_done)

    limited, retried, _buttons = fake_slack.calls_to("chat.postMessage")
    assert limited.status == 429 and limited.response == {"ok": False, "error": "ratelimited"}
    assert retried.status == 200 and retried.at - limited.at >= 1.0
    assert [m.text for m in fake_slack.messages] == ["Drawn", "Pick one"]
    assert_ping_story(fake_slack, bot, placeholder_ts)


# -- Socket Mode --------------------------------------------------------------------------------


async def test_socket_mode_slash_command_and_button_are_acked_and_handled(
    fake_slack: FakeSlack, slack_client: AsyncWebClient, signing_secret: str
) -> None:
    bot = build_ping_bot(slack_client, signing_secret)
    async with run_socket_mode(bot.app, fake_slack):
        ack = await fake_slack.socket_send_slash_command("/ping", "a red square", channel_id=CHANNEL)
        assert ack.payload == {"text": "pong"}
        placeholder_ts = await next_item(bot.commands_done)
        assert_ping_story(fake_slack, bot, placeholder_ts)

        buttons_ts = fake_slack.messages_in(CHANNEL)[-1].ts
        click_ack = await fake_slack.socket_send_block_action(
            "imagine_pick_2", "2", channel_id=CHANNEL, message_ts=buttons_ts
        )
        assert click_ack.payload is None
        action = await next_item(bot.clicks)
        assert (action["value"], action["block_id"]) == ("2", "imagine_buttons")  # from the message

    assert [c.method for c in fake_slack.calls][:2] == ["apps.connections.open", "auth.test"]
    assert fake_slack.calls[0].token == "xapp-test"


async def test_socket_mode_reconnects_when_asked_to(
    fake_slack: FakeSlack,
    slack_client: AsyncWebClient,
    signing_secret: str,
    slack_socket_mode: SocketModeStarter,
) -> None:
    bot = build_ping_bot(slack_client, signing_secret)
    await slack_socket_mode(bot.app)
    await fake_slack.socket_send_disconnect()
    await fake_slack.wait_until(
        lambda: (
            fake_slack.socket_connections_total == 2
            and len(fake_slack.calls_to("apps.connections.open")) == 2
        )
    )
    ack = await fake_slack.socket_send_block_action("imagine_pick_1", "1", channel_id=CHANNEL)
    assert ack.envelope_id
    await next_item(bot.clicks)


# -- response_url ---------------------------------------------------------------------------------


async def test_response_url_allows_five_uses_then_refuses(fake_slack: FakeSlack) -> None:
    response_url = fake_slack.new_response_url()
    webhook = AsyncWebhookClient(response_url.url)
    statuses = [(await webhook.send(text=f"progress {i}")).status_code for i in range(6)]

    assert statuses == [200] * 5 + [404]
    assert [body["text"] for body in response_url.bodies] == [f"progress {i}" for i in range(5)]
    assert response_url.refused_count == 1


async def test_response_url_expires_after_thirty_minutes(fake_slack: FakeSlack) -> None:
    response_url = fake_slack.new_response_url()
    webhook = AsyncWebhookClient(response_url.url)
    assert (await webhook.send(text="early")).status_code == 200

    fake_slack.advance_clock(RESPONSE_URL_LIFETIME_SECONDS + 1)
    late = await webhook.send(text="late")
    assert (late.status_code, late.body) == (404, '{"ok": false, "error": "expired_url"}')


# -- Web API details --------------------------------------------------------------------------------


async def test_wrong_or_missing_token_is_refused(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as wrong:
        await AsyncWebClient(token="xoxb-wrong", base_url=fake_slack.api_url).auth_test()
    with pytest.raises(SlackApiError) as missing:
        await AsyncWebClient(base_url=fake_slack.api_url).auth_test()
    assert wrong.value.response["error"] == "invalid_auth"
    assert missing.value.response["error"] == "not_authed"


async def test_not_in_channel_until_joined(fake_slack: FakeSlack, slack_client: AsyncWebClient) -> None:
    fake_slack.add_channel("C0PRIV", is_member=False)
    with pytest.raises(SlackApiError) as refused:
        await slack_client.chat_postMessage(channel="C0PRIV", text="hi")
    assert refused.value.response["error"] == "not_in_channel"

    await slack_client.conversations_join(channel="C0PRIV")
    info = await slack_client.conversations_info(channel="C0PRIV")
    assert info["channel"]["is_member"] is True
    await slack_client.chat_postMessage(channel="C0PRIV", text="hi")
    assert [m.text for m in fake_slack.messages_in("C0PRIV")] == ["hi"]


async def test_users_info_ephemeral_delete_and_app_home(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    fake_slack.add_user("U0ADMIN", is_admin=True)
    user = (await slack_client.users_info(user="U0ADMIN"))["user"]
    assert (user["is_admin"], user["is_owner"]) == (True, False)

    await slack_client.chat_postEphemeral(channel=CHANNEL, user="U0ADMIN", text="only you")
    assert fake_slack.ephemerals == [
        {"channel": CHANNEL, "user": "U0ADMIN", "text": "only you", "blocks": None, "thread_ts": None}
    ]

    posted = await slack_client.chat_postMessage(channel=CHANNEL, text="bye")
    await slack_client.chat_delete(channel=CHANNEL, ts=posted["ts"])
    assert fake_slack.messages_in(CHANNEL) == []

    view = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Recent"}}]}
    await slack_client.views_publish(user_id="U0ADMIN", view=view)
    assert fake_slack.home_views["U0ADMIN"] == view


async def test_fault_switches(fake_slack: FakeSlack, slack_client: AsyncWebClient) -> None:
    fake_slack.api_error("chat.postMessage", "channel_not_found")
    fake_slack.server_error("chat.postMessage", status=503)
    fake_slack.slow("auth.test", 0.3)

    for expected_error in ("channel_not_found", "fatal_error"):
        with pytest.raises(SlackApiError) as failed:
            await slack_client.chat_postMessage(channel=CHANNEL, text="hi")
        assert failed.value.response["error"] == expected_error
    assert [c.status for c in fake_slack.calls_to("chat.postMessage")] == [200, 503]
    await slack_client.chat_postMessage(channel=CHANNEL, text="hi")

    await slack_client.auth_test()
    [auth] = fake_slack.calls_to("auth.test")
    assert auth.response["ok"] is True
    # The answer came 0.3 s after arrival: the next call cannot have arrived sooner.
    await slack_client.auth_test()
    assert fake_slack.calls_to("auth.test")[1].at - auth.at >= 0.3


async def test_upload_step_faults(fake_slack: FakeSlack, slack_client: AsyncWebClient) -> None:
    fake_slack.fail(UPLOAD_STEP, status=500)
    with pytest.raises(SlackRequestError, match="status: 500"):
        await slack_client.files_upload_v2(channel=CHANNEL, content=b"bytes", filename="grid.png")
    with pytest.raises(SlackApiError) as never_uploaded:
        await slack_client.files_completeUploadExternal(files=[{"id": "F0NOPE"}], channel_id=CHANNEL)
    assert never_uploaded.value.response["error"] == "file_not_found"
    assert fake_slack.completed_uploads() == []


async def test_image_blocks_show_an_unshared_upload_and_refuse_an_unknown_file(
    fake_slack: FakeSlack, slack_client: AsyncWebClient
) -> None:
    uploaded = await slack_client.files_upload_v2(content=b"\x89PNG preview", filename="preview.png")
    file_id = uploaded["files"][0]["id"]
    assert fake_slack.uploads[file_id].is_completed and fake_slack.uploads[file_id].channel_id is None
    posted = await slack_client.chat_postMessage(channel=CHANNEL, text="drawing")

    def image(file: str) -> list[dict[str, Any]]:
        return [{"type": "image", "slack_file": {"id": file}, "alt_text": "a preview"}]

    await slack_client.chat_update(channel=CHANNEL, ts=posted["ts"], text="drawing", blocks=image(file_id))
    message = fake_slack.message(CHANNEL, posted["ts"])
    assert [block["slack_file"]["id"] for block in iter_slack_files(message.blocks)] == [file_id]
    with pytest.raises(SlackApiError) as unknown:
        await slack_client.chat_update(channel=CHANNEL, ts=posted["ts"], text="x", blocks=image("F0NOPE"))
    assert unknown.value.response["error"] == "invalid_blocks"
    assert message.update_count == 1
