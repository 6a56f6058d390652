"""/imagine and the other slash commands through the real Bolt app in HTTP mode (signed POSTs)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.slack.admins import SlackAdmins
from bot.slack.app import build_app
from jobs.models import EnqueueRequest, Status
from jobs.queue import Queue
from tests.fakes.slack import FakeSlack, iter_actions
from tests.fakes.slack_apps import HttpStarter
from tests.slack.imagine.harness import CHANNEL, TEST_ACK_DEADLINE_SECONDS, USER, SlackBot

ADMIN = "U0ADMIN"


async def test_imagine_acks_with_position_and_posts_a_placeholder(bot: SlackBot) -> None:
    response = await bot.slack.send_slash_command(
        "/imagine", "a watercolor fox --images 4 --seed 7", channel_id=CHANNEL, user_id=USER
    )
    assert response.status == 200 and response.elapsed < 3.0
    assert "position 1" in response.text and "job 1" in response.text
    assert "no estimate yet" in response.text  # nothing rendered yet to time the queue by

    job = await bot.wait_placeholder(1)
    assert (job.prompt, job.options.images, job.options.seed) == ("a watercolor fox", 4, 7)
    assert (job.platform, job.guild_id, job.channel_id, job.user_id) == (
        "slack",
        bot.fake.team_id,
        CHANNEL,
        USER,
    )
    assert job.refs.response_url and job.status is Status.QUEUED
    placeholder = bot.fake.message(CHANNEL, job.refs.placeholder_message_id or "")
    assert "queued, position 1" in (placeholder.text or "")
    assert [a["action_id"] for a in iter_actions(placeholder.blocks)] == [
        "imagine:cancel:1",
        "imagine:info:1",
    ]
    # Nothing went through the response_url: the ack carried the answer.
    assert bot.fake.response_urls[response.response_url_id].bodies == []


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
async def test_second_prompt_gets_position_two_on_both_engines(bot: SlackBot) -> None:
    await bot.slack.send_slash_command("/imagine", "one", channel_id=CHANNEL, user_id="U0ONE")
    second = await bot.slack.send_slash_command("/imagine", "two", channel_id=CHANNEL, user_id="U0TWO")
    assert "position 2" in second.text
    await bot.wait_placeholder(2)


BAD_INPUTS = {
    "empty": ("", "empty"),
    "whitespace": ("   ", "empty"),
    "emoji only": ("🎨 🦊", "letters"),
    "too long": ("fox " * 100, "the limit is 300"),
    "control characters": ("a fox\x07", "control"),
    "images 10": ("a fox --images 10", "images must be from 1 to 9"),
    "images 0": ("a fox -n 0", "images must be from 1 to 9"),
    "negative seed": ("a fox --seed -3", "seed must be 0 or more"),
    "unknown option": ("a fox --style noir", "I don't know the option"),
    "missing value": ("a fox --seed", "needs a value"),
    "guidance out of range": ("a fox --guidance 1000", "guidance_scale must be a number"),
}


@pytest.mark.parametrize(("text", "expected"), list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
async def test_each_bad_input_is_an_ephemeral_reason_and_writes_nothing(
    bot: SlackBot, text: str, expected: str
) -> None:
    response = await bot.slack.send_slash_command("/imagine", text, channel_id=CHANNEL)
    assert response.status == 200
    assert response.text.startswith("⚠️") and expected.lower() in response.text.lower(), response.text
    assert await bot.job_count() == 0
    assert bot.fake.messages == []  # nothing in the channel: the reply was the (ephemeral) ack


async def test_help_shows_usage(bot: SlackBot) -> None:
    response = await bot.slack.send_slash_command("/imagine", "--help", channel_id=CHANNEL)
    assert response.text.startswith("Usage: `/imagine &lt;prompt&gt; [--images N]")
    assert await bot.job_count() == 0


async def test_workspace_refusals_are_specific(bot: SlackBot) -> None:
    team = bot.fake.team_id
    await bot.queue.update_settings(
        "slack", team, blocked_words=("noir",), allowed_channels=(CHANNEL, "C0ART")
    )
    await bot.queue.ban("slack", "U0BAD", guild_id=team, reason="spam")

    blocked = await bot.slack.send_slash_command("/imagine", "a noir fox", channel_id=CHANNEL)
    banned = await bot.slack.send_slash_command("/imagine", "a fox", channel_id=CHANNEL, user_id="U0BAD")
    elsewhere = await bot.slack.send_slash_command("/imagine", "a fox", channel_id="C0RANDOM")

    assert "'noir'" in blocked.text and "rephrase" in blocked.text
    assert "banned" in banned.text
    assert "not allowed in this channel" in elsewhere.text and "C0ART" in elsewhere.text
    assert await bot.job_count() == 0


async def test_a_direct_message_keeps_its_workspace_rules(bot: SlackBot) -> None:
    """The DM policy (docs/slack.md): a DM belongs to its workspace, so its bans and blocked words hold
    there as in its channels."""
    team, dm = bot.fake.team_id, "D0DIRECT"
    bot.fake.add_channel(dm, name="directmessage")
    await bot.queue.update_settings("slack", team, blocked_words=("noir",))
    await bot.queue.ban("slack", "U0BAD", guild_id=team, reason="spam")

    blocked = await bot.slack.send_slash_command("/imagine", "a noir fox", channel_id=dm)
    banned = await bot.slack.send_slash_command("/imagine", "a fox", channel_id=dm, user_id="U0BAD")
    assert "'noir'" in blocked.text and "banned" in banned.text
    assert await bot.job_count() == 0

    queued = await bot.slack.send_slash_command("/imagine", "a fox", channel_id=dm)
    assert "Queued" in queued.text, queued.text
    [job] = await bot.queue.jobs_for_user("slack", USER, limit=5)
    assert (job.guild_id, job.channel_id) == (team, dm)


async def test_quota_refusal_names_the_reset_time(
    fake_slack: FakeSlack,
    bot_client: Any,
    signing_secret: str,
    slack_http: HttpStarter,
    make_queue: Callable[..., Queue],
) -> None:
    queue = make_queue(daily_quota_images=4)
    await queue.worker_heartbeat("w", device="cpu", model="m", batch_images=8)
    slack = await slack_http(
        build_app(
            client=bot_client,
            queue=queue,
            admins=SlackAdmins(),
            signing_secret=signing_secret,
            ack_deadline_seconds=TEST_ACK_DEADLINE_SECONDS,
        )
    )
    first = await slack.send_slash_command("/imagine", "a fox --images 4", channel_id=CHANNEL)
    second = await slack.send_slash_command("/imagine", "a fox --images 1", channel_id=CHANNEL)
    assert "Queued" in first.text
    assert "used 4 of your 4 images" in second.text and "resets at 00:00 UTC" in second.text


async def test_channel_without_the_bot_gets_invite_me_and_no_job(bot: SlackBot) -> None:
    bot.fake.add_channel("C0PRIV", is_member=False)
    response = await bot.slack.send_slash_command("/imagine", "a fox", channel_id="C0PRIV")
    assert "not a member of <#C0PRIV>" in response.text and "/invite @imagine" in response.text
    assert await bot.job_count() == 0

    bot.fake.add_channel("C0PRIV", is_member=True)  # someone invites the bot
    invited = await bot.slack.send_slash_command("/imagine", "a fox", channel_id="C0PRIV")
    assert "Queued" in invited.text
    await bot.wait_placeholder(1)


async def test_bot_removed_after_the_check_cancels_the_job_and_says_invite_me(bot: SlackBot) -> None:
    await bot.slack.send_slash_command("/imagine", "a fox", channel_id=CHANNEL)  # membership now cached
    await bot.wait_placeholder(1)
    bot.fake.add_channel(CHANNEL, is_member=False)  # kicked
    response = await bot.slack.send_slash_command("/imagine", "another fox", channel_id=CHANNEL)
    assert "Queued" in response.text  # the cached check passed ...
    job = await bot.wait_job(2, lambda j: j.status is Status.CANCELLED, "cancelled")  # ... the post did not
    body = await _response_url_body(bot, response.response_url_id)
    assert "not a member of <#C0CHAN>" in body["text"] and body["response_type"] == "ephemeral"
    assert job.refs.placeholder_message_id is None


async def test_no_generator_online_is_refused(
    fake_slack: FakeSlack, bot_client: Any, signing_secret: str, slack_http: HttpStarter, queue: Queue
) -> None:
    slack = await slack_http(
        build_app(
            client=bot_client,
            queue=queue,
            admins=SlackAdmins(),
            signing_secret=signing_secret,
            ack_deadline_seconds=TEST_ACK_DEADLINE_SECONDS,
        )
    )
    response = await slack.send_slash_command("/imagine", "a fox", channel_id=CHANNEL)
    assert "no generator is running right now" in response.text
    assert await queue.jobs_for_user("slack", USER) == []


@pytest.mark.parametrize(
    "tampering", [{"bad_signature": True}, {"timestamp_skew": -6 * 60}], ids=["bad-signature", "stale"]
)
async def test_unsigned_or_replayed_requests_get_401_and_enqueue_nothing(
    bot: SlackBot, tampering: dict[str, Any]
) -> None:
    command = await bot.slack.send_slash_command("/imagine", "a fox", channel_id=CHANNEL, **tampering)
    click = await bot.slack.send_block_action("imagine:reroll:1", channel_id=CHANNEL, **tampering)
    assert (command.status, click.status) == (401, 401)
    assert await bot.job_count() == 0
    assert bot.fake.calls == []


async def test_queue_and_history(bot: SlackBot) -> None:
    empty = await bot.slack.send_slash_command("/imagine-queue", channel_id=CHANNEL)
    assert "You have nothing waiting or drawing" in empty.text and "Generators online: 1" in empty.text
    for prompt in ("a red fox", "a blue owl"):
        await bot.slack.send_slash_command("/imagine", f"{prompt} --seed 5", channel_id=CHANNEL)
    await bot.slack.send_slash_command("/imagine", "someone else's", channel_id=CHANNEL, user_id="U0OTHER")
    await bot.wait_placeholder(3)
    await bot.render_next()

    queued = await bot.slack.send_slash_command("/imagine-queue", channel_id=CHANNEL)
    # U0OTHER's one job is fairer than our second one (start-time fair queueing), so ours is 2nd.
    assert "job 2 “a blue owl” — position 2, ready in " in queued.text  # one render timed: an ETA
    assert "job 1" not in queued.text and "someone else" not in queued.text

    history = await bot.slack.send_slash_command("/imagine-history", channel_id=CHANNEL)
    lines = history.text.splitlines()
    assert lines[0] == "*Your recent pictures*"
    assert "job 2" in lines[1] and "job 1" in lines[2] and "✅" in lines[2] and "seed 5" in lines[2]
    assert len(lines) == 3


async def test_admin_commands_refuse_non_admins(bot: SlackBot) -> None:
    bot.fake.add_user(USER)
    for command, text in (
        ("/imagine-usage", ""),
        ("/imagine-settings", "quota 5"),
        ("/imagine-ban", "<@U0BAD|bad> spam"),
    ):
        response = await bot.slack.send_slash_command(command, text, channel_id=CHANNEL, user_id=USER)
        assert f"`{command}` is for workspace admins" in response.text
    assert (await bot.queue.get_settings("slack", bot.fake.team_id)).daily_quota_images is None
    assert await bot.queue.bans("slack") == []
    assert bot.fake.calls_to("users.info")  # asked Slack once ...
    assert len(bot.fake.calls_to("users.info")) == 1  # ... and cached the answer


async def test_admin_settings_ban_and_usage(bot: SlackBot) -> None:
    bot.fake.add_user(ADMIN, is_admin=True)
    team = bot.fake.team_id

    async def admin(command: str, text: str = "") -> str:
        response = await bot.slack.send_slash_command(command, text, channel_id=CHANNEL, user_id=ADMIN)
        assert response.status == 200
        return response.text

    shown = await admin("/imagine-settings")
    assert "Allowed channels: every channel" in shown and "default (0)" in shown
    assert "Changed `quota`" in await admin("/imagine-settings", "quota 8")
    assert "Changed the allowed channels" in await admin(
        "/imagine-settings", "channels <#C0CHAN|general> <#C0ART>"
    )
    assert "`noir`" in await admin("/imagine-settings", "block noir")
    assert "There is no setting `colour`" in await admin("/imagine-settings", "colour blue")
    space = await bot.queue.get_settings("slack", team)
    assert (space.daily_quota_images, space.allowed_channels, space.blocked_words) == (
        8,
        ("C0CHAN", "C0ART"),
        ("noir",),
    )

    assert "<@U0BAD> may no longer use /imagine here" in await admin(
        "/imagine-ban", "<@U0BAD|bad> posts spam"
    )
    assert "posts spam" in await admin("/imagine-ban", "list")
    refused = await bot.slack.send_slash_command("/imagine", "a fox", channel_id=CHANNEL, user_id="U0BAD")
    assert "banned" in refused.text
    assert "may use /imagine here again" in await admin("/imagine-ban", "remove <@U0BAD>")
    assert (
        "Queued"
        in (await bot.slack.send_slash_command("/imagine", "a fox", channel_id=CHANNEL, user_id="U0BAD")).text
    )

    await bot.wait_placeholder(1)
    await bot.render_next()
    usage = await admin("/imagine-usage", "30")
    assert "last 30 days" in usage and "1 jobs · 4 images asked for · 1 done" in usage and "<@U0BAD>" in usage
    assert "days must be from 1 to 90" in await admin("/imagine-usage", "365")

    # Extra admins named in the settings need no Slack admin flag.
    await admin("/imagine-settings", "admins <@U0HELPER>")
    helper = await bot.slack.send_slash_command("/imagine-usage", "", channel_id=CHANNEL, user_id="U0HELPER")
    assert "usage for this workspace" in helper.text


async def _response_url_body(bot: SlackBot, response_url_id: str) -> dict[str, Any]:
    response_url = bot.fake.response_urls[response_url_id]
    await bot.fake.wait_until(lambda: response_url.bodies, what="a response_url post")
    [body] = response_url.bodies
    return body


async def test_slow_queue_acks_at_once_then_answers_on_response_url(
    fake_slack: FakeSlack,
    bot_client: Any,
    signing_secret: str,
    slack_http: HttpStarter,
    queue: Queue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await queue.worker_heartbeat("w", device="cpu", model="m", batch_images=8)
    real_enqueue = queue.enqueue

    async def slow_enqueue(request: EnqueueRequest, **kwargs: Any) -> Any:
        await asyncio.sleep(0.5)  # a database under a burst of commands
        return await real_enqueue(request, **kwargs)

    monkeypatch.setattr(queue, "enqueue", slow_enqueue)
    app = build_app(client=bot_client, queue=queue, admins=SlackAdmins(), signing_secret=signing_secret)
    slack = await slack_http(app)  # the production deadline: ACK_DEADLINE_SECONDS
    response = await slack.send_slash_command("/imagine", "a fox", channel_id=CHANNEL)
    assert response.elapsed < 3.0 and "adding your prompt" in response.text  # acked before the queue answered
    url = fake_slack.response_urls[response.response_url_id]
    await fake_slack.wait_until(lambda: url.bodies, what="the position on the response_url")
    [body] = url.bodies
    assert "position 1" in body["text"] and body["replace_original"] is False
    assert body["response_type"] == "ephemeral"
    await fake_slack.wait_until(lambda: fake_slack.messages_in(CHANNEL), what="the placeholder")


async def test_a_replayed_request_is_refused_even_inside_the_timestamp_window(bot: SlackBot) -> None:
    import time
    from urllib.parse import urlencode

    import aiohttp

    from tests.fakes.slack import sign_request

    body = urlencode(bot.fake.slash_command_payload("/imagine", "a fox", channel_id=CHANNEL))
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": sign_request(bot.slack.signing_secret, timestamp, body),
    }
    async with aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(2):  # Slack's request, then an attacker sending the same bytes again
            async with session.post(bot.slack.events_url, data=body.encode(), headers=headers) as response:
                statuses.append(response.status)
    assert statuses == [200, 401]
    assert await bot.job_count() == 1


async def test_a_burst_is_acked_first_and_every_prompt_is_queued_once(bot: SlackBot) -> None:
    responses = await asyncio.gather(
        *(
            bot.slack.send_slash_command(
                "/imagine", f"fox number {i}", channel_id=CHANNEL, user_id=f"U{i:04d}"
            )
            for i in range(12)
        )
    )
    answers = []
    for response in responses:
        assert response.status == 200 and response.elapsed < 3.0
        if "adding your prompt" in response.text:  # acked before the queue answered: it follows
            url = bot.fake.response_urls[response.response_url_id]
            await bot.fake.wait_until(lambda url=url: url.bodies, what="the deferred answer")
            answers.append(url.bodies[0]["text"])
        else:
            answers.append(response.text)
    assert all("Queued" in answer for answer in answers), answers
    job_ids = sorted(int(answer.split("job ")[1].split(":")[0]) for answer in answers)
    assert job_ids == list(range(1, 13))
    for job_id in job_ids:
        await bot.wait_placeholder(job_id)
    assert len(bot.fake.messages_in(CHANNEL)) == 12
