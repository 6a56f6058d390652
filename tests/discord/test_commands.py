"""The commands around /imagine: refusals shown ephemerally in the queue's words with no row written,
/queue and /history, the admin commands (hidden and re-checked), and command sync only on change."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import discord
import pytest
from discord import app_commands
from sqlalchemy.engine import make_url

from bot import messages
from bot.discord.client import ImagineBot
from jobs.models import Platform
from tests.discord.stories import (
    Generator,
    answered,
    ephemeral_answer,
    jobs_of,
    wait_delivered,
    wait_for_grid,
)
from tests.fakes.discord import ADMINISTRATOR, EPHEMERAL_FLAG, FakeDiscord, InteractionRecord

ADMIN_COMMANDS = {"usage", "settings", "ban", "unban"}
MANAGE_GUILD = discord.Permissions(manage_guild=True).value
DEFERRED = 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE: "thinking…"


async def _answer(fake: FakeDiscord, name: str, options: dict[str, Any] | None = None, **kw: Any) -> str:
    interaction = await fake.send_slash_command(name, options or {}, **kw)
    await fake.wait_for_callback(interaction, timeout=3.0)
    return await ephemeral_answer(fake, interaction)


BAD_INPUTS = [
    ({"prompt": "   "}, "empty"),
    ({"prompt": "x" * 301}, "300"),
    ({"prompt": "a cat\x07"}, "control"),
    ({"prompt": "a cat\x00"}, "NUL"),
    ({"prompt": "🐱🐱"}, "letters"),
    ({"prompt": "a cat", "images": 0}, "images must be from 1 to 9"),
    ({"prompt": "a cat", "images": 10}, "images must be from 1 to 9"),
    ({"prompt": "a cat", "seed": -1}, "seed must be 0 or more"),
    ({"prompt": "a cat", "guidance": 1000.0}, "guidance_scale"),
    ({"prompt": "a cat", "temperature": 0.0}, "temperature"),
    ({"prompt": "a cat", "top_k": 0}, "top_k"),
]


async def test_every_bad_input_is_an_ephemeral_reason_and_writes_nothing(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    bot = await make_bot()
    queue = generator.queue
    for options, words in BAD_INPUTS:
        text = await _answer(fake_discord, "imagine", options)
        assert text.startswith("Sorry, I can't draw that: ") and words.lower() in text.lower(), (
            options,
            text,
        )
    assert await jobs_of(queue, fake_discord.user.id) == []

    guild = str(fake_discord.guild.id)
    await queue.update_settings(Platform.DISCORD, guild, blocked_words=["dragon"])
    assert "'dragon'" in await _answer(fake_discord, "imagine", {"prompt": "a red Dragon"})
    await queue.update_settings(Platform.DISCORD, guild, allowed_channels=["123456789012345678"])
    assert "not allowed in this channel" in await _answer(fake_discord, "imagine", {"prompt": "a cat"})
    await queue.update_settings(Platform.DISCORD, guild, allowed_channels=[], daily_quota_images=3)
    quota = await _answer(fake_discord, "imagine", {"prompt": "a cat", "images": 4})
    assert "resets at 00:00 UTC" in quota
    await queue.ban(Platform.DISCORD, str(fake_discord.user.id), guild_id=guild)
    assert "banned" in await _answer(fake_discord, "imagine", {"prompt": "a cat"})
    assert await jobs_of(queue, fake_discord.user.id) == []

    await queue.unban(Platform.DISCORD, str(fake_discord.user.id), guild_id=guild)
    await queue.update_settings(Platform.DISCORD, guild, daily_quota_images=0, max_queued_per_user=1)
    first = await fake_discord.send_slash_command("imagine", {"prompt": "a cat"})
    await fake_discord.wait_for_callback(first)
    assert "prompts waiting" in await _answer(fake_discord, "imagine", {"prompt": "another cat"})
    assert len(await jobs_of(queue, fake_discord.user.id)) == 1
    assert bot.is_ready()


async def test_no_generator_online_is_refused(fake_discord: FakeDiscord, make_bot: Any) -> None:
    await make_bot()  # no generator registered in this test
    assert await _answer(fake_discord, "imagine", {"prompt": "a cat"}) == messages.refused_no_worker()


async def test_in_direct_messages_the_operator_rules_and_the_user_quota_apply(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    """The DM policy (docs/discord.md): /imagine works in the bot's DMs; no server's own rules reach
    there, the operator's do (IMAGINE_BLOCKED_WORDS, bans on every server), and one daily quota per user
    counts their pictures in every server and DM together."""
    await make_bot()
    queue = generator.queue
    queue.limits = dataclasses.replace(queue.limits, blocked_words=("dragon",), daily_quota_images=5)
    user, guild = str(fake_discord.user.id), str(fake_discord.guild.id)
    await queue.update_settings(Platform.DISCORD, guild, blocked_words=["owl"])
    await queue.ban(Platform.DISCORD, user, guild_id=guild)
    assert "banned" in await _answer(fake_discord, "imagine", {"prompt": "a cat"})

    dm = await fake_discord.send_slash_command("imagine", {"prompt": "an owl", "images": 4}, in_dm=True)
    await fake_discord.wait_for_callback(dm)
    [job] = await jobs_of(queue, fake_discord.user.id)
    assert job.guild_id == "" and job.channel_id == str(fake_discord.dm_channel(fake_discord.user))
    await generator.start()
    grid = await wait_for_grid(fake_discord, dm)
    assert grid.channel_id == fake_discord.dm_channel(fake_discord.user)

    answer = await _answer(fake_discord, "imagine", {"prompt": "a red Dragon"}, in_dm=True)
    assert "'dragon', which this bot blocks" in answer
    quota = await _answer(fake_discord, "imagine", {"prompt": "a cat", "images": 2}, in_dm=True)
    assert "resets at 00:00 UTC" in quota  # 4 drawn + 2 asked > 5, wherever they were drawn
    await queue.unban(Platform.DISCORD, user, guild_id=guild)
    quota = await _answer(fake_discord, "imagine", {"prompt": "a cat", "images": 2})
    assert "resets at 00:00 UTC" in quota
    await queue.ban(Platform.DISCORD, user, guild_id="")  # the dashboard's "every server"
    assert "banned" in await _answer(fake_discord, "imagine", {"prompt": "a cat"}, in_dm=True)
    assert len(await jobs_of(queue, fake_discord.user.id)) == 1


async def test_queue_and_history(fake_discord: FakeDiscord, make_bot: Any, generator: Generator) -> None:
    await make_bot()
    interaction = await fake_discord.send_slash_command("imagine", {"prompt": "a *bold* owl", "images": 1})
    await fake_discord.wait_for_callback(interaction)
    [job] = await jobs_of(generator.queue, fake_discord.user.id)

    queue_text = await _answer(fake_discord, "queue")
    assert "1 job(s) waiting (1 images)" in queue_text and "1 generator(s) online" in queue_text
    assert f"#{job.id} Queued (position 1)" in queue_text and r"a \*bold\* owl" in queue_text

    await generator.start()
    message = await wait_for_grid(fake_discord, interaction)
    await wait_delivered(generator, job.id)
    history = await fake_discord.send_slash_command("history")
    await fake_discord.wait_for_callback(history)
    answer = await answered(fake_discord, history)  # a deferred answer is edited in later
    assert answer is not None and answer.is_ephemeral
    link = f"https://discord.com/channels/{fake_discord.guild.id}/{fake_discord.channel_id}/{message.id}"
    assert f"#{job.id} Done" in answer.embeds[0]["description"] and link in answer.embeds[0]["description"]


async def test_admin_commands_are_hidden_and_refused_for_members(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    await make_bot()
    [put] = fake_discord.find_requests("PUT", r"^/applications/\d+/commands$")
    sent = {command["name"]: command for command in put.json}
    assert set(sent) == {"imagine", "queue", "history", "cancel", *ADMIN_COMMANDS}
    for name in ADMIN_COMMANDS:
        assert sent[name]["default_member_permissions"] == MANAGE_GUILD, name
        assert sent[name]["contexts"] == [0], name  # guild only
    for name in sent.keys() - ADMIN_COMMANDS:
        assert sorted(sent[name]["contexts"]) == [0, 1], name  # servers and DMs with the bot, no group DMs
    for name in sent:
        assert sent[name]["integration_types"] == [0], name  # installed to servers, never to users
    assert sent["imagine"]["default_member_permissions"] is None
    images = next(o for o in sent["imagine"]["options"] if o["name"] == "images")
    assert (images["min_value"], images["max_value"]) == (1, 9)

    bob = fake_discord.add_user("bob")
    # a member calling them anyway (an admin re-scoped the command, or a raw API call) is refused here
    for name, options in (
        ("usage", {}),
        ("settings", {"daily_quota": 1}),
        ("ban", {"user": bob}),
        ("unban", {"user": bob}),
    ):
        assert await _answer(fake_discord, name, options) == messages.refused_admin_only(name)
    space = await generator.queue.get_settings(Platform.DISCORD, str(fake_discord.guild.id))
    assert space.daily_quota_images is None and await generator.queue.bans(Platform.DISCORD) == []


async def test_admin_settings_ban_unban_and_usage(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    await make_bot()
    admin = {"member_permissions": ADMINISTRATOR}
    bob = fake_discord.add_user("bob")
    interaction = await fake_discord.send_slash_command("imagine", {"prompt": "a quiet harbour", "images": 2})
    await fake_discord.wait_for_callback(interaction)
    await generator.start()
    await wait_for_grid(fake_discord, interaction)

    changed = await fake_discord.send_slash_command(
        "settings",
        {
            "channels": f"<#{fake_discord.channel_id}>",
            "max_queued": 3,
            "daily_quota": 50,
            "blocked_words": "dragon, gore",
        },
        **admin,
    )
    await fake_discord.wait_for_callback(changed)
    space = await generator.queue.get_settings(Platform.DISCORD, str(fake_discord.guild.id))
    assert space.allowed_channels == (str(fake_discord.channel_id),)
    assert (space.max_queued_per_user, space.daily_quota_images) == (3, 50)
    assert space.blocked_words == ("dragon", "gore")

    assert await _answer(fake_discord, "ban", {"user": bob, "reason": "spam"}, **admin) == messages.banned(
        f"<@{bob.id}>"
    )
    assert "banned" in await _answer(fake_discord, "imagine", {"prompt": "a cat"}, user=bob)
    assert await _answer(fake_discord, "unban", {"user": bob}, **admin) == messages.unbanned(
        f"<@{bob.id}>", True
    )

    usage = await fake_discord.send_slash_command("usage", {"period": "day"}, **admin)
    await fake_discord.wait_for_callback(usage)
    answer = await answered(fake_discord, usage)  # a deferred answer is edited in later
    assert answer is not None and answer.is_ephemeral
    [embed] = answer.embeds
    assert embed["description"].startswith("1 jobs, 2 images")
    fields = {field["name"]: field["value"] for field in embed["fields"]}
    assert "alice" in fields["Top users"] and "a quiet harbour" in fields["Recent prompts"]


@pytest.mark.parametrize("dev_guild", [False, True])
async def test_commands_sync_only_when_their_definitions_change(
    fake_discord: FakeDiscord, make_bot: Any, dev_guild: bool
) -> None:
    options = {"dev_guild_id": fake_discord.guild.id} if dev_guild else {}
    first = await make_bot(**options)
    await first.close()
    second = await make_bot(**options)
    assert fake_discord.command_sync_count == 1  # the restart found the same definitions
    await second.close()

    third = await make_bot(bot_class=BotWithOneMoreCommand, **options)
    await third.close()
    assert fake_discord.command_sync_count == 2
    if dev_guild:
        assert fake_discord.global_commands == []
        synced = {c["name"] for c in fake_discord.guild_commands[fake_discord.guild.id]}
    else:
        synced = {c["name"] for c in fake_discord.global_commands}
    assert synced == {"imagine", "queue", "history", "cancel", "extra", *ADMIN_COMMANDS}


@app_commands.command()
async def extra(interaction: discord.Interaction) -> None:
    """A command added in a new version of the bot."""


class BotWithOneMoreCommand(ImagineBot):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.tree.add_command(extra)


async def test_a_busy_queue_is_acked_at_once_and_answered_after(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator
) -> None:
    await make_bot(ack_budget_seconds=0.0)  # the queue never answers in time: every /imagine defers
    ok = await fake_discord.send_slash_command("imagine", {"prompt": "a patient heron", "images": 1})
    assert (await fake_discord.wait_for_callback(ok, timeout=3.0))["type"] == 5  # thinking…
    queued = await fake_discord.wait_until(
        lambda: (m := fake_discord.original_message(ok)) and not m.is_loading and m, timeout=15
    )
    assert queued.embeds[0]["title"] == "Queued" and not queued.is_ephemeral

    await generator.queue.ban(
        Platform.DISCORD, str(fake_discord.user.id), guild_id=str(fake_discord.guild.id)
    )
    banned = await fake_discord.send_slash_command("imagine", {"prompt": "a cat"})
    await fake_discord.wait_for_callback(banned, timeout=3.0)
    [followup] = await fake_discord.wait_until(lambda: banned.followup_message_ids, timeout=15)
    assert fake_discord.original_message(banned).is_deleted  # type: ignore[union-attr]
    answer = fake_discord.messages[followup]
    assert answer.is_ephemeral and "banned" in answer.content

    # bad input needs no database: refused at once, ephemerally, even with no time budget at all
    assert "images must be from 1 to 9" in await _answer(
        fake_discord, "imagine", {"prompt": "x", "images": 0}
    )

    await generator.start()
    await wait_for_grid(fake_discord, ok)


def test_the_discord_frontend_and_poster_never_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bot.discord.app, bot.discord.poster; "
        "sys.exit('torch imported' if 'torch' in sys.modules else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@contextlib.asynccontextmanager
async def database_slowed(db_url: str, seconds: float) -> AsyncIterator[None]:
    """Every statement on the queue's tables waits `seconds`: another session holds them all locked."""
    dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    locker = await asyncpg.connect(dsn)
    transaction = locker.transaction()
    await transaction.start()
    await locker.execute(
        "LOCK TABLE jobs, images, spaces, bans, fair_users, workers IN ACCESS EXCLUSIVE MODE"
    )
    released = asyncio.ensure_future(_release_after(transaction, seconds))
    try:
        yield
    finally:
        await released
        await locker.close()


async def _release_after(transaction: Any, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await transaction.rollback()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_every_interaction_is_acknowledged_in_time_whatever_the_database_does(
    fake_discord: FakeDiscord, make_bot: Any, generator: Generator, db_url: str
) -> None:
    """With the database locked for 3.5 s, each command and button still gets its callback within Discord's
    3 seconds (deferred and ephemeral: the answers are private) and then its answer."""
    await make_bot()
    imagine = await fake_discord.send_slash_command("imagine", {"prompt": "a slow cat", "images": 1})
    await fake_discord.wait_for_callback(imagine, timeout=3.0)
    queued = await answered(fake_discord, imagine)
    [job] = await jobs_of(generator.queue, fake_discord.user.id)
    admin = {"member_permissions": ADMINISTRATOR}
    asks: list[tuple[str, Callable[[], Awaitable[InteractionRecord]]]] = [
        ("/queue", lambda: fake_discord.send_slash_command("queue", {})),
        ("/history", lambda: fake_discord.send_slash_command("history", {})),
        ("/settings", lambda: fake_discord.send_slash_command("settings", {}, **admin)),
        ("/usage", lambda: fake_discord.send_slash_command("usage", {}, **admin)),
        ("ℹ️", lambda: fake_discord.click_button(queued.id, f"imagine:info:{job.id}")),
        ("❌", lambda: fake_discord.click_button(queued.id, f"imagine:cancel:{job.id}")),
        ("/cancel", lambda: fake_discord.send_slash_command("cancel", {"job": job.id})),
    ]
    for name, ask in asks:
        async with database_slowed(db_url, 3.5):
            interaction = await ask()
            await fake_discord.wait_for_callback(interaction, timeout=3.0)
        assert interaction.ack_latency_s is not None and interaction.ack_latency_s < 3.0, name
        callback = interaction.callback
        assert callback is not None and callback["type"] == DEFERRED, name
        assert callback["data"]["flags"] & EPHEMERAL_FLAG, name  # a private answer stays private
        answer = await fake_discord.wait_until(
            lambda i=interaction: (
                (m := fake_discord.original_message(i)) is not None and not m.is_loading and m
            ),
            timeout=10.0,
        )
        assert answer.content or answer.embeds, name
    assert (await generator.queue.get_job(job.id)).status.value == "cancelled"  # the ❌ took effect
