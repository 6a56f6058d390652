"""/imagine end to end: a real discord.py client against the fake Discord, the real queue on SQLite,
the real generator (tiny checkpoint) delivering through the real DiscordPoster."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from bot.buttons import grid_button_rows
from jobs.models import Status
from tests.discord.stories import Generator, first_answer, image_of, wait_delivered, wait_for_grid
from tests.fakes.discord import FakeDiscord
from tests.jobs.databases import ENGINES


@pytest.mark.parametrize("db_url", ENGINES, indirect=True)
async def test_imagine_acks_with_the_position_then_edits_through_progress_to_the_grid(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    await make_bot()
    interaction = await fake_discord.send_slash_command(
        "imagine", {"prompt": "a red fox", "images": 4, "seed": 7}
    )

    answer = await first_answer(fake_discord, interaction)
    assert interaction.ack_latency_s is not None and interaction.ack_latency_s < 3.0
    [queued] = answer["embeds"]
    assert queued["title"] == "Queued"
    assert {"name": "Position", "value": "1", "inline": True} in queued["fields"]
    job_id = int(answer["components"][0]["components"][0]["custom_id"].split(":")[2])

    await generator.start()
    message = await wait_for_grid(fake_discord, interaction)

    titles = [edit["embeds"][0]["title"] for edit in message.edits]
    assert titles[-1] == "Done" and "Rendering" in titles
    assert titles.index("Rendering") < titles.index("Done")
    [done] = message.embeds
    assert "a red fox" in done["description"]
    fields = {field["name"]: field["value"] for field in done["fields"]}
    assert fields["Seed"] == "7" and fields["Images"] == "4"
    assert done["image"]["url"] == "attachment://grid.png"
    grid = image_of(message)
    assert grid.format == "PNG" and grid.width >= 64 and grid.height >= 64  # 2×2 tiny 32-pixel images
    expected = [b.custom_id for row in grid_button_rows(job_id, 4) for b in row]
    assert message.custom_ids == expected
    assert all(len(custom_id) <= 100 for custom_id in message.custom_ids)
    assert message.edited_by == ["webhook"] * len(message.edits)  # only @original edits, no new message
    assert len(fake_discord.channel_messages()) == 1
    # progress edits are throttled: at most one per progress interval (0.1 s here), never one per token
    rendering = [at for at, title in zip(message.edit_times, titles, strict=True) if title == "Rendering"]
    # (counted over their span, not gap by gap: a loaded machine can delay one request and not the next)
    assert len(rendering) <= (rendering[-1] - rendering[0]) / 0.1 + 3
    job = await wait_delivered(generator, job_id)
    assert job.status is Status.DONE
    assert job.refs.final_message_id == str(message.id)


async def test_a_failed_job_shows_its_reason_in_its_message(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    await make_bot()
    interaction = await fake_discord.send_slash_command("imagine", {"prompt": "an impossible thing"})
    await fake_discord.wait_for_callback(interaction)
    [job] = await generator.queue.claim("another-generator", 8)
    await generator.queue.fail(
        job.id, "another-generator", reason="the generator ran out of memory", retryable=False
    )

    await generator.start(render=False)  # only the delivery loop
    message = fake_discord.original_message(interaction)
    assert message is not None
    await fake_discord.wait_until(lambda: message.embeds[0]["title"] == "Failed", timeout=10)
    fields = {field["name"]: field["value"] for field in message.embeds[0]["fields"]}
    assert fields["Why"] == "the generator ran out of memory"
    assert message.components == []  # no cancel button on a job that is over


async def test_run_discord_is_the_frontend_imagine_serve_starts(
    fake_discord: FakeDiscord, queue: Any, tmp_path: Any
) -> None:
    from bot.discord.app import run_discord
    from bot.discord.poster import DiscordPoster
    from bot.frontends import enabled_frontends
    from bot.posters import make_posters
    from jobs.settings import load_settings

    settings = load_settings(env_file=None, discord_token=fake_discord.token, data_dir=tmp_path)
    assert [f.name for f in enabled_frontends(settings)] == ["discord"]
    [frontend] = enabled_frontends(settings)
    assert frontend.load() is run_discord
    posters = make_posters(settings)
    assert isinstance(posters["discord"], DiscordPoster) and fake_discord.token not in repr(
        posters["discord"]
    )
    await posters["discord"].aclose()

    async with run_discord(settings, queue) as bot:
        assert bot.is_ready() and bot.queue is queue
        assert fake_discord.command_sync_count == 1
    assert bot.is_closed()
    assert (tmp_path / "discord-commands.json").exists()


async def test_progress_edits_carry_a_preview_of_the_grid_forming(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    await make_bot()
    generator.previews, generator.step_delay = True, 0.004  # ~1 s of drawing: several progress edits
    interaction = await fake_discord.send_slash_command(
        "imagine", {"prompt": "a fox at dawn", "images": 4, "seed": 2}
    )
    await fake_discord.wait_for_callback(interaction, timeout=3.0)
    await generator.start()
    message = await fake_discord.wait_until(
        lambda: (m := fake_discord.original_message(interaction)) and m.embeds[0]["title"] == "Done" and m,
        timeout=30.0,
    )

    with_preview = [
        edit
        for edit in message.edits
        if edit["embeds"][0]["title"] == "Rendering" and edit.get("attachments")
    ]
    assert with_preview, [edit["embeds"][0]["title"] for edit in message.edits]
    assert with_preview[0]["embeds"][0]["image"]["url"] == "attachment://preview.png"
    uploads = [
        part.data
        for request in fake_discord.find_requests("PATCH", r"/messages/@original")
        for part in request.parts
        if part.filename == "preview.png"
    ]
    first = Image.open(io.BytesIO(uploads[0])).convert("RGB")
    assert first.size == (2 * 128 + 3 * 4,) * 2  # 2×2 previews of 128 px, the grid's gutters
    # the bottom code rows were not drawn yet: neutral grey, not the picture
    assert first.getpixel((4 + 64, 4 + 127)) == (128, 128, 128)
    assert message.embeds[0]["image"]["url"] == "attachment://grid.png"
    assert [a.filename for a in message.attachments] == ["grid.png"]  # the preview gave way to the grid
