"""/imagine and the other slash commands through the real Bolt app in HTTP mode (signed POSTs)."""

from __future__ import annotations

from jobs.models import Status
from tests.fakes.slack import iter_actions
from tests.slack.imagine.harness import CHANNEL, USER, SlackBot


async def test_imagine_acks_with_position_and_posts_a_placeholder(bot: SlackBot) -> None:
    response = await bot.slack.send_slash_command(
        "/imagine", "a watercolor fox --images 4 --seed 7", channel_id=CHANNEL, user_id=USER
    )
    assert response.status == 200 and response.elapsed < 3.0
    assert "position 1" in response.text and "job 1" in response.text

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
