"""The buttons under a grid, clicked on a message made by a bot that has since restarted: variation, pick,
reroll, parameters, cancel (the requester, an admin, and someone else)."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.buttons import Action, ButtonId
from jobs.models import Kind, Status
from tests.discord.stories import (
    Generator,
    answered,
    ephemeral_answer,
    ephemeral_text,
    first_answer,
    image_of,
    jobs_of,
    wait_for_grid,
)
from tests.fakes.discord import ADMINISTRATOR, EPHEMERAL_FLAG, FakeDiscord


async def _first_grid(fake: FakeDiscord, make_bot: Any, generator: Generator) -> tuple[Any, int]:
    bot = await make_bot()
    interaction = await fake.send_slash_command("imagine", {"prompt": "a lighthouse", "images": 2, "seed": 3})
    await generator.start()
    message = await wait_for_grid(fake, interaction)
    job_id = ButtonId.parse(message.custom_ids[0]).job_id
    return bot, message, job_id  # type: ignore[return-value]


async def test_variation_pick_reroll_and_info_after_a_restart(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    first, message, parent_id = await _first_grid(fake_discord, make_bot, generator)
    await first.close()
    await make_bot()  # a new process: nothing of the first bot's views is in memory

    variation = await fake_discord.click_button(
        message.id, ButtonId(Action.VARIATION, parent_id, 1).custom_id
    )
    queued = await first_answer(fake_discord, variation)  # a new public message: "Queued"
    assert queued["embeds"][0]["title"] == "Queued" and not queued.get("flags", 0) & EPHEMERAL_FLAG
    varied = await wait_for_grid(fake_discord, variation)
    assert varied.id != message.id and varied.embeds[0]["title"] == "Done"
    assert len(varied.custom_ids) == 2 + 2 + 2  # U1 U2 V1 V2 🔄 ℹ️ of the new job

    pick = await fake_discord.click_button(message.id, ButtonId(Action.PICK, parent_id, 0).custom_id)
    picked = await wait_for_grid(fake_discord, pick)
    assert image_of(picked).size == (32, 32)  # the one image, full size, not the grid
    pick_job = ButtonId.parse(picked.custom_ids[0]).job_id
    assert picked.custom_ids == [
        ButtonId(Action.VARIATION, pick_job, 0).custom_id,
        ButtonId(Action.UPSCALE, pick_job, 0).custom_id,
        ButtonId(Action.REROLL, pick_job).custom_id,
        ButtonId(Action.INFO, pick_job).custom_id,
    ]

    reroll = await fake_discord.click_button(message.id, ButtonId(Action.REROLL, parent_id).custom_id)
    await wait_for_grid(fake_discord, reroll)

    info = await fake_discord.click_button(message.id, ButtonId(Action.INFO, parent_id).custom_id)
    await fake_discord.wait_for_callback(info, timeout=3.0)
    answer = await answered(fake_discord, info)  # a deferred answer is edited in later
    assert answer is not None and answer.is_ephemeral and answer.embeds[0]["title"] == f"Job #{parent_id}"
    # ℹ️ shows each picture's CLIP score, best first, as stored
    scores = await generator.queue.image_scores(parent_id)
    [field] = [f for f in answer.embeds[0]["fields"] if f["name"] == "CLIP score"]
    assert field["value"] == " · ".join(f"{i + 1}: {s:.3f}" for i, s in sorted(scores.items()))
    assert list(scores.values()) == sorted(scores.values(), reverse=True)

    jobs = {job.kind: job for job in await jobs_of(generator.queue, fake_discord.user.id)}
    parent = await generator.queue.get_job(parent_id)
    assert jobs[Kind.VARIATION].parent_job_id == parent_id and jobs[Kind.VARIATION].image_index == 1
    assert jobs[Kind.PICK].image_index == 0
    assert jobs[Kind.REROLL].prompt == parent.prompt
    assert jobs[Kind.REROLL].options.seed != parent.options.seed  # a new seed
    assert all(job.status is Status.DONE for job in jobs.values())


async def test_cancel_button_is_for_the_requester_or_an_admin(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    await make_bot()  # the generator is online but not drawing: jobs stay queued
    mine = await fake_discord.send_slash_command("imagine", {"prompt": "a slow boat"})
    await fake_discord.wait_for_callback(mine)
    queued = await answered(fake_discord, mine)  # a deferred answer is edited in later
    assert queued is not None
    cancel_id = next(c for c in queued.custom_ids if ":cancel:" in c)
    job_id = ButtonId.parse(cancel_id).job_id

    bob = fake_discord.add_user("bob")
    stranger = await fake_discord.click_button(queued.id, cancel_id, user=bob)
    await fake_discord.wait_for_callback(stranger)
    assert "Only the person who asked" in await ephemeral_answer(fake_discord, stranger)
    assert (await generator.queue.get_job(job_id)).status is Status.QUEUED

    admin = await fake_discord.click_button(queued.id, cancel_id, user=bob, member_permissions=ADMINISTRATOR)
    await fake_discord.wait_for_callback(admin)
    assert await ephemeral_answer(fake_discord, admin) == f"Cancelled job #{job_id}."
    assert (await generator.queue.get_job(job_id)).status is Status.CANCELLED

    await generator.start()  # the delivery loop edits the queued message into "Cancelled"
    await fake_discord.wait_until(lambda: queued.embeds[0]["title"] == "Cancelled", timeout=10)
    assert queued.components == []


async def test_cancel_command_cancels_your_newest_job_or_names_a_missing_one(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    await make_bot()
    interaction = await fake_discord.send_slash_command("imagine", {"prompt": "a long story", "images": 9})
    await fake_discord.wait_for_callback(interaction)
    [job] = await jobs_of(generator.queue, fake_discord.user.id)

    cancel = await fake_discord.send_slash_command("cancel", {})
    await fake_discord.wait_for_callback(cancel)
    assert await ephemeral_answer(fake_discord, cancel) == f"Cancelled job #{job.id}."

    other = await fake_discord.send_slash_command("cancel", {"job": 999})
    await fake_discord.wait_for_callback(other)
    assert (
        await ephemeral_answer(fake_discord, other)
        == "There is no job #999: check its number in your history."
    )


async def test_cancel_while_rendering_stops_the_job_and_edits_its_message(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    await make_bot()
    interaction = await fake_discord.send_slash_command("imagine", {"prompt": "a very long render"})
    await fake_discord.wait_for_callback(interaction)
    queued = await answered(fake_discord, interaction)  # a deferred answer is edited in later
    assert queued is not None
    [job] = await generator.queue.claim("busy-generator", 8)  # another generator is drawing it

    click = await fake_discord.click_button(queued.id, ButtonId(Action.CANCEL, job.id).custom_id)
    await fake_discord.wait_for_callback(click)
    assert (await ephemeral_answer(fake_discord, click)).startswith(f"Stopping job #{job.id}")

    beat = await generator.queue.heartbeat([job.id], "busy-generator", 0.5, 60)
    assert beat.cancel_requested == {job.id}  # the drawing generator learns it at its next heartbeat
    await generator.queue.cancelled(job.id, "busy-generator")
    await generator.start(render=False)
    await fake_discord.wait_until(lambda: queued.embeds[0]["title"] == "Cancelled", timeout=10)


def _replies_to(fake: FakeDiscord, message_id: int) -> list[Any]:
    return [
        m
        for m in fake.messages.values()
        if m.message_reference and m.message_reference.get("message_id") == str(message_id)
    ]


async def test_upscale_a_picked_image_replies_once_at_four_times_the_size(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    """pick → ⬆ Upscale: the clicker's progress is private, the 4× picture a reply to the picked image;
    over the quota it is refused with the reason; while it waits it can be cancelled."""
    _, message, parent_id = await _first_grid(fake_discord, make_bot, generator)
    pick = await fake_discord.click_button(message.id, ButtonId(Action.PICK, parent_id, 1).custom_id)
    picked = await wait_for_grid(fake_discord, pick)
    pick_job = ButtonId.parse(picked.custom_ids[0]).job_id
    upscale_id = ButtonId(Action.UPSCALE, pick_job, 0).custom_id

    click = await fake_discord.click_button(picked.id, upscale_id)
    await fake_discord.wait_for_callback(click, timeout=3.0)
    queued = await answered(fake_discord, click)  # a deferred answer is edited in later
    assert queued is not None and queued.is_ephemeral and queued.embeds[0]["title"] == "Queued"
    reply = await fake_discord.wait_until(
        lambda: (r := _replies_to(fake_discord, picked.id)) and r[0].attachments and r[0], timeout=30
    )
    assert image_of(picked).size == (32, 32) and image_of(reply).size == (4 * 32, 4 * 32)
    assert reply.embeds[0]["title"] == "Done" and f"<@{fake_discord.user.id}>" in reply.content
    [upscale] = [
        job for job in await jobs_of(generator.queue, fake_discord.user.id) if job.kind is Kind.UPSCALE
    ]
    assert (upscale.parent_job_id, upscale.image_index, upscale.status) == (pick_job, 0, Status.DONE)
    assert upscale.quota_images == generator.queue.limits.upscale_quota_images and upscale.gpu_seconds
    await asyncio.sleep(0.3)
    assert len(_replies_to(fake_discord, picked.id)) == 1  # posted once

    # the quota counts an upscale at its cost: 2 images drawn + 4 do not fit in 5
    guild = str(fake_discord.guild.id)
    await generator.queue.update_settings("discord", guild, daily_quota_images=5)
    refused = await fake_discord.click_button(picked.id, upscale_id)
    await fake_discord.wait_for_callback(refused, timeout=3.0)
    assert "asked for an upscale, which counts as 4" in ephemeral_text(fake_discord, refused)

    # cancellable while it waits (the generator stopped drawing)
    await generator.queue.update_settings("discord", guild, daily_quota_images=0)
    await generator.stop()
    again = await fake_discord.click_button(picked.id, upscale_id)
    await fake_discord.wait_for_callback(again, timeout=3.0)
    waiting = await answered(fake_discord, again)  # a deferred answer is edited in later
    assert waiting is not None
    job_id = ButtonId.parse(next(c for c in waiting.custom_ids if ":cancel:" in c)).job_id
    cancel = await fake_discord.click_button(waiting.id, ButtonId(Action.CANCEL, job_id).custom_id)
    await fake_discord.wait_for_callback(cancel, timeout=3.0)
    assert await ephemeral_answer(fake_discord, cancel) == f"Cancelled job #{job_id}."
    assert (await generator.queue.get_job(job_id)).status is Status.CANCELLED
