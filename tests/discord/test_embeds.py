"""The /imagine embeds: content per state, Discord's limits, escaping, and as posted through the fake."""

from __future__ import annotations

import dataclasses
import datetime
import io
from typing import Any

import discord

from bot.discord.embeds import (
    GRID_FILENAME,
    MAX_DESCRIPTION_LENGTH,
    done_embed,
    failed_embed,
    parameters_embed,
    progress_bar,
    prompt_text,
    queued_embed,
    rendering_embed,
)
from jobs.models import Delivery, Job, Kind, MessageRefs, Status
from jobs.options import JobOptions
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_client import FAST_GUILD_READY_TIMEOUT_S

NOW = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)


def make_job(**overrides: Any) -> Job:
    job = Job(
        id=31,
        kind=Kind.IMAGINE,
        parent_job_id=None,
        image_index=None,
        platform="discord",
        guild_id="1",
        channel_id="2",
        user_id="3",
        user_name="alice",
        prompt="an avocado armchair",
        prompt_normalized="an avocado armchair",
        options=JobOptions(images=4, seed=1234, guidance_scale=10.0, top_k=256, temperature=1.0),
        status=Status.DONE,
        fair_tag=0.0,
        attempts=1,
        run_after=NOW,
        lease_owner=None,
        lease_expires_at=None,
        progress=1.0,
        cancel_requested=False,
        error=None,
        error_detail=None,
        created_at=NOW,
        started_at=NOW + datetime.timedelta(seconds=2),
        finished_at=NOW + datetime.timedelta(seconds=9.5),
        gpu_seconds=7.5,
        delivery=Delivery.PENDING,
        delivery_attempts=0,
        delivery_failures=0,
        delivery_next_try_at=None,
        delivery_error=None,
        refs=MessageRefs(),
    )
    return dataclasses.replace(job, **overrides)


def fields(embed: discord.Embed) -> dict[str, str]:
    return {field.name or "": field.value or "" for field in embed.fields}


def test_progress_bar_clamps_and_rounds() -> None:
    assert progress_bar(0.5, width=6) == "▰▰▰▱▱▱ 50 %"
    assert progress_bar(-1).startswith("▱") and progress_bar(-1).endswith(" 0 %")
    assert progress_bar(2.0).endswith(" 100 %") and "▱" not in progress_bar(2.0)


def test_prompt_is_escaped_and_cut() -> None:
    assert prompt_text("**bold** <@123>") == "\\*\\*bold\\*\\* <@123>"
    long = prompt_text("x" * 5000)
    assert len(long) == MAX_DESCRIPTION_LENGTH and long.endswith("…")


def test_queued_shows_position_and_relative_eta() -> None:
    embed = queued_embed("a cat", position=3, eta=datetime.timedelta(seconds=90), now=NOW)

    assert embed.title == "Queued"
    ready_at = int((NOW + datetime.timedelta(seconds=90)).timestamp())
    assert fields(embed) == {"Position": "3", "Ready": f"<t:{ready_at}:R>"}
    assert fields(queued_embed("a cat", position=1, eta=None, now=NOW))["Ready"] == "unknown yet"


def test_rendering_shows_progress() -> None:
    assert fields(rendering_embed("a cat", progress=0.25))["Progress"].endswith(" 25 %")


def test_done_has_the_options_to_reproduce_and_the_grid() -> None:
    embed = done_embed(make_job())

    assert fields(embed) == {
        "Seed": "1234",
        "Images": "4",
        "Guidance": "10",
        "Temperature": "1",
        "Top-k": "256",
        "Model": "default",
    }
    assert embed.image.url == f"attachment://{GRID_FILENAME}"
    assert embed.footer.text == "Job #31 · rendered in 7.5 s"


def test_parameters_show_top_p_when_set() -> None:
    job = make_job(options=JobOptions(top_p=0.9, model="dalle-mega"))
    assert fields(parameters_embed(job))["Top-p"] == "0.9"
    assert fields(parameters_embed(job))["Model"] == "dalle-mega"


def test_failed_says_why() -> None:
    embed = failed_embed(make_job(status=Status.FAILED, error="The generator ran out of memory."))
    assert fields(embed) == {"Why": "The generator ran out of memory."}
    assert fields(failed_embed(make_job(error=None)))["Why"] == "The job failed."


class EmbedClient(discord.Client):
    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=FAST_GUILD_READY_TIMEOUT_S)


async def test_done_embed_and_grid_as_posted(fake_discord: FakeDiscord, discord_client_runner: Any) -> None:
    client = await discord_client_runner(EmbedClient())
    channel = client.get_channel(fake_discord.channel_id)
    assert isinstance(channel, discord.TextChannel)

    grid = discord.File(io.BytesIO(b"\x89PNG fake"), filename=GRID_FILENAME)
    sent = await channel.send(embed=done_embed(make_job()), file=grid)

    [embed] = fake_discord.messages[sent.id].embeds
    assert embed["image"]["url"] == "attachment://grid.png"
    assert [f["name"] for f in embed["fields"]][:2] == ["Seed", "Images"]
    assert sent.embeds[0].title == "Done"
