"""The buttons under a grid, clicked on a message made by a bot that has since restarted: variation, pick,
reroll, parameters, cancel (the requester, an admin, and someone else)."""

from __future__ import annotations

from typing import Any

from bot.buttons import Action, ButtonId
from jobs.models import Kind, Status
from tests.discord.stories import Generator, ephemeral_text, image_of, jobs_of, wait_for_grid
from tests.fakes.discord import ADMINISTRATOR, FakeDiscord

CHANNEL_MESSAGE_WITH_SOURCE = 4


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
    callback = await fake_discord.wait_for_callback(variation, timeout=3.0)
    assert callback["type"] == CHANNEL_MESSAGE_WITH_SOURCE  # a new public message: "Queued"
    assert callback["data"]["embeds"][0]["title"] == "Queued"
    varied = await wait_for_grid(fake_discord, variation)
    assert varied.id != message.id and varied.embeds[0]["title"] == "Done"
    assert len(varied.custom_ids) == 2 + 2 + 2  # U1 U2 V1 V2 🔄 ℹ️ of the new job

    pick = await fake_discord.click_button(message.id, ButtonId(Action.PICK, parent_id, 0).custom_id)
    picked = await wait_for_grid(fake_discord, pick)
    assert image_of(picked).size == (32, 32)  # the one image, full size, not the grid
    pick_job = ButtonId.parse(picked.custom_ids[0]).job_id
    assert picked.custom_ids == [
        ButtonId(Action.VARIATION, pick_job, 0).custom_id,
        ButtonId(Action.REROLL, pick_job).custom_id,
        ButtonId(Action.INFO, pick_job).custom_id,
    ]

    reroll = await fake_discord.click_button(message.id, ButtonId(Action.REROLL, parent_id).custom_id)
    await wait_for_grid(fake_discord, reroll)

    info = await fake_discord.click_button(message.id, ButtonId(Action.INFO, parent_id).custom_id)
    await fake_discord.wait_for_callback(info, timeout=3.0)
    answer = fake_discord.original_message(info)
    assert answer is not None and answer.is_ephemeral and answer.embeds[0]["title"] == f"Job #{parent_id}"

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
    queued = fake_discord.original_message(mine)
    assert queued is not None
    cancel_id = next(c for c in queued.custom_ids if ":cancel:" in c)
    job_id = ButtonId.parse(cancel_id).job_id

    bob = fake_discord.add_user("bob")
    stranger = await fake_discord.click_button(queued.id, cancel_id, user=bob)
    await fake_discord.wait_for_callback(stranger)
    assert "Only the person who asked" in ephemeral_text(fake_discord, stranger)
    assert (await generator.queue.get_job(job_id)).status is Status.QUEUED

    admin = await fake_discord.click_button(queued.id, cancel_id, user=bob, member_permissions=ADMINISTRATOR)
    await fake_discord.wait_for_callback(admin)
    assert ephemeral_text(fake_discord, admin) == f"Cancelled job #{job_id}."
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
    assert ephemeral_text(fake_discord, cancel) == f"Cancelled job #{job.id}."

    other = await fake_discord.send_slash_command("cancel", {"job": 999})
    await fake_discord.wait_for_callback(other)
    assert ephemeral_text(fake_discord, other) == "There is no job #999: check its number in your history."


async def test_cancel_while_rendering_stops_the_job_and_edits_its_message(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    await make_bot()
    interaction = await fake_discord.send_slash_command("imagine", {"prompt": "a very long render"})
    await fake_discord.wait_for_callback(interaction)
    queued = fake_discord.original_message(interaction)
    assert queued is not None
    [job] = await generator.queue.claim("busy-generator", 8)  # another generator is drawing it

    click = await fake_discord.click_button(queued.id, ButtonId(Action.CANCEL, job.id).custom_id)
    await fake_discord.wait_for_callback(click)
    assert ephemeral_text(fake_discord, click).startswith(f"Stopping job #{job.id}")

    beat = await generator.queue.heartbeat([job.id], "busy-generator", 0.5, 60)
    assert beat.cancel_requested == {job.id}  # the drawing generator learns it at its next heartbeat
    await generator.queue.cancelled(job.id, "busy-generator")
    await generator.start(render=False)
    await fake_discord.wait_until(lambda: queued.embeds[0]["title"] == "Cancelled", timeout=10)
