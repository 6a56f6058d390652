"""Delivery through the DiscordPoster when Discord is not kind: the token is 16 minutes old or revoked,
429 storms and 5xx, an upload limit smaller than the grid. Never lost, never twice."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.buttons import ButtonId
from jobs.models import Delivery
from tests.discord.stories import (
    Clock,
    Generator,
    advance,
    image_of,
    jobs_of,
    wait_delivered,
    wait_for_grid,
)
from tests.fakes.discord import FakeDiscord, StoredMessage

GENERATOR_TIMEOUT_S = 30.0  # a render and a post; generous for a loaded CI machine


def is_channel_grid(message: StoredMessage) -> bool:
    return message.created_by == "channel" and bool(message.attachments)


async def _queued(fake: FakeDiscord, prompt: str, **options: Any) -> Any:
    interaction = await fake.send_slash_command("imagine", {"prompt": prompt, **options})
    await fake.wait_for_callback(interaction, timeout=3.0)
    # A loaded machine defers first ("thinking…") and edits in "Queued" after the enqueue: wait for that
    # edit, or a test that then deletes the message races the bot's own edit.
    await fake.wait_until(
        lambda: (message := fake.original_message(interaction)) is not None and not message.is_loading,
        timeout=30.0,
    )
    return interaction


async def test_a_16_minute_old_job_is_posted_as_a_channel_message_mentioning_the_user(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator, clock: Clock
) -> None:
    await make_bot()
    interaction = await _queued(fake_discord, "a night train", images=1)
    queued = fake_discord.original_message(interaction)
    edit_original = r"^/webhooks/.*/@original$"
    live_edits = len(fake_discord.find_requests("PATCH", edit_original))  # a deferred ack's "Queued"
    advance(fake_discord, clock, 16 * 60)  # the queue was long: the interaction token is dead

    await generator.start()
    posted = await fake_discord.wait_for_message(is_channel_grid, timeout=GENERATOR_TIMEOUT_S)

    assert posted.content == f"<@{fake_discord.user.id}> your picture is ready."
    [create] = fake_discord.find_requests("POST", rf"^/channels/{fake_discord.channel_id}/messages$")
    assert create.json["allowed_mentions"] == {"parse": [], "users": [str(fake_discord.user.id)]}
    assert posted.embeds[0]["title"] == "Done" and image_of(posted).format == "PNG"
    assert ButtonId.parse(posted.custom_ids[0]).job_id > 0
    # the dead token was never used: no 10062 storm towards Discord's invalid-request limit
    assert len(fake_discord.find_requests("PATCH", edit_original)) == live_edits
    assert queued is not None and queued.embeds[0]["title"] == "Queued"
    [job] = await jobs_of(generator.queue, fake_discord.user.id)
    job = await wait_delivered(generator, job.id)
    assert job.refs.final_message_id == str(posted.id) and job.refs.extra["delivered_via"] == "channel"


@pytest.mark.parametrize(("status", "error"), [(403, "Missing Access"), (404, "Unknown Channel")])
async def test_a_channel_discord_refuses_for_good_is_undeliverable_at_once(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator, clock: Clock, status: int, error: str
) -> None:
    """Not retried with backoff for an hour: waiting does not give the bot its access back. The reason
    is kept for the admins."""
    await make_bot()
    await _queued(fake_discord, "a locked room", images=1)
    advance(fake_discord, clock, 16 * 60)  # the token is dead: the result goes to the channel
    channel_posts = rf"^/channels/{fake_discord.channel_id}/messages$"
    fake_discord.fail(f"POST {channel_posts}", times=None, status=status, error=error)

    await generator.start()
    [job] = await jobs_of(generator.queue, fake_discord.user.id)
    job = await wait_delivered(generator, job.id, timeout=GENERATOR_TIMEOUT_S)
    assert job.delivery is Delivery.UNDELIVERABLE
    assert job.delivery_error is not None and error in job.delivery_error
    await asyncio.sleep(1.0)
    assert len(fake_discord.find_requests("POST", channel_posts)) == 1  # tried once, then left alone


async def test_a_revoked_token_10062_falls_back_to_the_channel(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    await make_bot()
    interaction = await _queued(fake_discord, "a paper crane", images=1)
    fake_discord.expire_token(interaction.token)  # Discord says 10062, whatever our clock thinks

    await generator.start()
    posted = await fake_discord.wait_for_message(is_channel_grid, timeout=GENERATOR_TIMEOUT_S)

    assert posted.content.startswith(f"<@{fake_discord.user.id}>")
    assert {r.status for r in fake_discord.find_requests("PATCH", r"^/webhooks/.*/@original$")} == {404}


async def test_429_storms_and_5xx_never_post_twice(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator, clock: Clock
) -> None:
    await make_bot()
    live = [await _queued(fake_discord, f"a storm {index}", images=1) for index in range(3)]
    fake_discord.rate_limit(r"^/webhooks/", times=8, retry_after=0.05)
    fake_discord.server_error(r"^/webhooks/", times=2, status=502)

    await generator.start()
    messages = [await wait_for_grid(fake_discord, interaction) for interaction in live]
    assert all(len(message.attachments) == 1 for message in messages)
    await generator.stop()

    # the same again for late results, which go to the channel through create-then-upload
    late = [await _queued(fake_discord, f"a late storm {index}", images=1) for index in range(3)]
    advance(fake_discord, clock, 16 * 60)
    fake_discord.rate_limit(r"^/channels/\d+/messages", times=10, retry_after=0.05)
    fake_discord.server_error(r"PATCH ^/channels/\d+/messages/\d+$", times=2, status=500)
    await generator.start()
    await fake_discord.wait_until(
        lambda: (
            len([m for m in fake_discord.channel_messages() if m.created_by == "channel" and m.attachments])
            == 3
        ),
        timeout=20,
    )

    channel_posts = [m for m in fake_discord.channel_messages() if m.created_by == "channel"]
    assert len(channel_posts) == 3  # one message per late job, whatever the retries
    assert sorted(m.embeds[0]["description"] for m in channel_posts) == [
        f"a late storm {i}" for i in range(3)
    ]
    assert len(fake_discord.find_requests("POST", r"^/channels/\d+/messages$", answered=True)) > 3  # 429s
    jobs = await jobs_of(generator.queue, fake_discord.user.id)
    assert len(jobs) == len(live) + len(late)
    for job in jobs:
        assert (await wait_delivered(generator, job.id)).delivery is Delivery.DELIVERED


async def test_uploads_fall_back_to_jpeg_then_a_smaller_grid_within_the_limit(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    await make_bot()
    roomy = await fake_discord.send_slash_command("imagine", {"prompt": "a quilt", "images": 9, "seed": 1})
    await generator.start()
    png = image_of(await wait_for_grid(fake_discord, roomy))
    png_size = len((fake_discord.original_message(roomy) or roomy).attachments[0].data)  # type: ignore[union-attr]

    tight = await fake_discord.send_slash_command(
        "imagine", {"prompt": "a quilt", "images": 9, "seed": 1}, attachment_size_limit=png_size - 1
    )
    jpeg_message = await wait_for_grid(fake_discord, tight)
    [jpeg] = jpeg_message.attachments
    assert jpeg.filename == "grid.jpg" and len(jpeg.data) <= png_size - 1
    assert image_of(jpeg_message).size == png.size
    assert jpeg_message.embeds[0]["image"]["url"] == "attachment://grid.jpg"

    tiny_limit = len(jpeg.data) // 2
    tiny = await fake_discord.send_slash_command(
        "imagine", {"prompt": "a quilt", "images": 9, "seed": 1}, attachment_size_limit=tiny_limit
    )
    small = await wait_for_grid(fake_discord, tiny)
    assert len(small.attachments[0].data) <= tiny_limit
    assert image_of(small).width < png.width  # a smaller grid

    fake_discord.upload_limit_bytes = tiny_limit  # the limit was not in the interaction: Discord says 413
    unknown = await fake_discord.send_slash_command("imagine", {"prompt": "a quilt", "images": 9, "seed": 1})
    fallback = await wait_for_grid(fake_discord, unknown)
    assert len(fallback.attachments[0].data) <= tiny_limit
    assert 413 in {r.status for r in fake_discord.find_requests("PATCH", r"^/webhooks/")}


async def test_a_deleted_queued_message_gets_the_result_as_a_new_channel_message(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator, clock: Clock
) -> None:
    await make_bot()
    interaction = await _queued(fake_discord, "a vanishing act", images=1)
    queued = fake_discord.original_message(interaction)
    assert queued is not None
    queued.is_deleted = True  # someone deleted the bot's answer while the job waited
    advance(fake_discord, clock, 30)  # (a young unknown @original is "not answered yet": retried)

    await generator.start()
    posted = await fake_discord.wait_for_message(is_channel_grid, timeout=GENERATOR_TIMEOUT_S)
    assert posted.content.startswith(f"<@{fake_discord.user.id}>")
    assert len(fake_discord.channel_messages()) == 1
