"""The fake Discord, proved faithful by driving a real discord.py client through it."""

from __future__ import annotations

import asyncio
import io
import re
import time
from typing import Any

import discord
import pytest
from discord import app_commands
from PIL import Image

from tests.fakes.discord import ADMINISTRATOR, EPHEMERAL_FLAG, FakeDiscord, StoredMessage
from tests.fakes.discord_client import FAST_GUILD_READY_TIMEOUT_S, running


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


class PickButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"ping:pick:(?P<job>[0-9]+):(?P<index>[0-9])"
):
    """A button whose state lives in its custom_id, so it works on messages made before a restart."""

    def __init__(self, job: int, index: int) -> None:
        super().__init__(discord.ui.Button(label=f"U{index}", custom_id=f"ping:pick:{job}:{index}"))
        self.job = job
        self.index = index

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> PickButton:
        return cls(int(match["job"]), int(match["index"]))

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        interaction.client.clicks.append((self.job, self.index))  # type: ignore[attr-defined]
        await interaction.response.defer()  # type 6: no loading state for a button
        await interaction.edit_original_response(content=f"picked {self.index}")  # the button's message


class PingClient(discord.Client):
    """A small bot: /ping answers with a PNG and buttons; the other commands exercise faults."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=FAST_GUILD_READY_TIMEOUT_S)
        self.tree = app_commands.CommandTree(self)
        self.clicks: list[tuple[int, int]] = []
        self.errors: list[discord.HTTPException] = []
        self.go_on = asyncio.Event()
        self._add_commands()

    async def setup_hook(self) -> None:
        self.add_dynamic_items(PickButton)

    def _add_commands(self) -> None:
        @self.tree.command()
        async def ping(interaction: discord.Interaction) -> None:
            """Answers with a picture and two buttons."""
            await interaction.response.defer(thinking=True)
            view = discord.ui.View(timeout=None)
            for index in (1, 2):
                view.add_item(PickButton(job=42, index=index))
            picture = discord.File(io.BytesIO(png_bytes()), filename="grid.png")
            await interaction.edit_original_response(content="pong", attachments=[picture], view=view)

        @self.tree.command()
        async def echo(interaction: discord.Interaction, text: str) -> None:
            """Acks, then posts `text` as a follow-up."""
            await interaction.response.send_message("ack", ephemeral=True)
            await interaction.followup.send(text, wait=True)

        @self.tree.command()
        async def late(interaction: discord.Interaction) -> None:
            """Defers, waits for the test, then edits: the token may have expired meanwhile."""
            await interaction.response.defer()
            await self.go_on.wait()
            try:
                await interaction.edit_original_response(content="too late?")
            except discord.NotFound as exc:
                self.errors.append(exc)

        @self.tree.command()
        async def thinking(interaction: discord.Interaction) -> None:
            """Defers, then answers with a follow-up (which edits the loading message)."""
            await interaction.response.defer(thinking=True)
            await interaction.followup.send("done thinking")

        @self.tree.command()
        async def whois(interaction: discord.Interaction, member: discord.Member) -> None:
            """Names a member (a user option: resolved data)."""
            is_admin = interaction.permissions.administrator
            await interaction.response.send_message(f"{member.name} {member.id} {is_admin}", ephemeral=True)

        @self.tree.command()
        @app_commands.guild_only()
        @app_commands.default_permissions(manage_guild=True)
        async def usage(interaction: discord.Interaction) -> None:
            """Admins only."""
            await interaction.response.send_message("usage", ephemeral=True)


async def run_ping(fake: FakeDiscord) -> StoredMessage:
    interaction = await fake.send_slash_command("ping")
    callback = await fake.wait_for_callback(interaction, timeout=3.0)
    assert callback["type"] == 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    return await fake.wait_until(
        lambda: (message := fake.original_message(interaction)) and message.attachments and message
    )


async def test_login_ready_and_guild(fake_discord: FakeDiscord, discord_client_runner: Any) -> None:
    client = await discord_client_runner(PingClient())

    assert client.user is not None and client.user.id == fake_discord.bot_user.id
    assert client.application_id == fake_discord.application_id
    guild = client.get_guild(fake_discord.guild.id)
    assert guild is not None and not guild.unavailable
    assert client.get_channel(fake_discord.channel_id) is not None
    assert fake_discord.identify_count == 1
    assert fake_discord.gateway_connections[0].query["v"] == "10"
    assert [r.path for r in fake_discord.requests[:2]] == ["/users/@me", "/oauth2/applications/@me"]


async def test_bad_token_is_a_login_failure(fake_discord: FakeDiscord) -> None:
    with pytest.raises(discord.LoginFailure):
        async with running(PingClient(), token="not-the-token"):
            pass


async def test_tree_sync_is_one_bulk_put(fake_discord: FakeDiscord, discord_client_runner: Any) -> None:
    client = await discord_client_runner(PingClient())

    synced = await client.tree.sync()

    [put] = fake_discord.find_requests("PUT", rf"^/applications/{fake_discord.application_id}/commands$")
    names = {"ping", "echo", "late", "thinking", "whois", "usage"}
    assert {command["name"] for command in put.json} == names
    assert {command.name for command in synced} == names
    manage_guild = discord.Permissions(manage_guild=True).value
    sent_usage = next(c for c in put.json if c["name"] == "usage")
    assert sent_usage["default_member_permissions"] == manage_guild
    assert sent_usage["contexts"] == [0]  # guild_only
    usage = next(c for c in fake_discord.global_commands if c["name"] == "usage")
    assert usage["default_member_permissions"] == str(manage_guild)
    assert fake_discord.command_sync_count == 1


async def test_slash_command_defers_then_edits_original_with_png_and_buttons(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    await discord_client_runner(PingClient())

    interaction = await fake_discord.send_slash_command("ping")
    await fake_discord.wait_for_callback(interaction, timeout=3.0)
    assert interaction.ack_latency_s is not None and interaction.ack_latency_s < 3.0
    [edit] = await fake_discord.wait_for_request("PATCH", r"/messages/@original$")

    assert edit.query == {}
    assert edit.json["content"] == "pong"
    [upload] = edit.files
    assert upload.filename == "grid.png"
    assert Image.open(io.BytesIO(upload.data)).format == "PNG"
    message = fake_discord.original_message(interaction)
    assert message is not None and not message.is_loading
    assert message.custom_ids == ["ping:pick:42:1", "ping:pick:42:2"]
    [attachment] = message.attachments
    assert attachment.data == upload.data
    assert message.edited_by == ["webhook"]


async def test_button_click_routes_to_dynamic_item_even_after_restart(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    first = await discord_client_runner(PingClient())
    message = await run_ping(fake_discord)
    click = await fake_discord.click_button(message.id, "ping:pick:42:2")
    assert (await fake_discord.wait_for_callback(click))["type"] == 6
    assert first.clicks == [(42, 2)]
    await fake_discord.wait_until(lambda: message.content == "picked 2")

    await first.close()
    second = await discord_client_runner(PingClient())
    click = await fake_discord.click_button(message.id, "ping:pick:42:1")

    assert (await fake_discord.wait_for_callback(click))["type"] == 6
    assert second.clicks == [(42, 1)]
    assert fake_discord.identify_count == 2
    await fake_discord.wait_until(lambda: message.content == "picked 1")
    assert message.edited_by == ["webhook", "webhook", "webhook"]  # the grid, then one edit per click


async def test_rate_limited_followup_is_retried_and_posted_once(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    await discord_client_runner(PingClient())
    fake_discord.rate_limit(r"POST ^/webhooks/\d+/[^/]+$", retry_after=0.2)

    interaction = await fake_discord.send_slash_command("echo", {"text": "hello"})
    posts = await fake_discord.wait_for_request("POST", r"^/webhooks/\d+/[^/]+$", count=2)

    assert [p.status for p in posts] == [429, 200]
    assert posts[1].arrived_at - posts[0].arrived_at >= 0.2
    assert [m.content for m in fake_discord.messages.values() if m.content == "hello"] == ["hello"]
    assert fake_discord.original_message(interaction).flags & EPHEMERAL_FLAG  # type: ignore[union-attr]


@pytest.mark.parametrize("expire", ["clock", "switch"])
async def test_expired_token_surfaces_as_not_found_10062(
    fake_discord: FakeDiscord, discord_client_runner: Any, expire: str
) -> None:
    client = await discord_client_runner(PingClient())
    interaction = await fake_discord.send_slash_command("late")
    await fake_discord.wait_for_callback(interaction)

    if expire == "clock":
        fake_discord.advance_clock(16 * 60)
    else:
        fake_discord.expire_token(interaction.token)
    client.go_on.set()
    [error] = await fake_discord.wait_until(lambda: client.errors)

    assert isinstance(error, discord.NotFound) and error.code == 10062


async def test_late_ack_is_refused(fake_discord: FakeDiscord, discord_client_runner: Any) -> None:
    await discord_client_runner(PingClient())
    fake_discord.advance_clock(-5.0)  # the interaction is born 5 s "before" the bot sees it
    interaction = await fake_discord.send_slash_command("echo", {"text": "x"})
    fake_discord.advance_clock(5.0)

    [callback] = await fake_discord.wait_for_request("POST", rf"^/interactions/{interaction.id}/")

    assert callback.status == 404 and interaction.callback is None


async def test_gateway_reconnect_resumes_and_interactions_still_arrive(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    await discord_client_runner(PingClient())

    await fake_discord.request_reconnect()
    await fake_discord.wait_until(lambda: fake_discord.resume_count == 1)
    await fake_discord.close_gateway(4000)
    await fake_discord.wait_until(lambda: fake_discord.resume_count == 2)
    interaction = await fake_discord.send_slash_command("echo", {"text": "after resume"})

    await fake_discord.wait_for_callback(interaction, timeout=3.0)
    assert fake_discord.identify_count == 1
    assert [c.path for c in fake_discord.gateway_connections] == [
        "/gateway",
        "/gateway/resume",
        "/gateway/resume",
    ]


async def test_server_error_then_success(fake_discord: FakeDiscord, discord_client_runner: Any) -> None:
    client = await discord_client_runner(PingClient())
    fake_discord.server_error(r"^/channels/\d+/messages$", status=502)
    channel = client.get_channel(fake_discord.channel_id)
    assert isinstance(channel, discord.TextChannel)

    started = time.monotonic()
    sent = await channel.send("hello channel", file=discord.File(io.BytesIO(png_bytes()), filename="a.png"))

    posts = fake_discord.find_requests("POST", r"^/channels/\d+/messages$")
    assert [p.status for p in posts] == [502, 200]
    assert time.monotonic() - started < 3.0
    stored = fake_discord.messages[sent.id]
    assert stored.created_by == "channel" and stored.attachments[0].filename == "a.png"
    assert await sent.attachments[0].read() == png_bytes()


async def test_upload_over_the_limit_is_413(fake_discord: FakeDiscord, discord_client_runner: Any) -> None:
    client = await discord_client_runner(PingClient())
    fake_discord.upload_limit_bytes = 10
    channel = client.get_channel(fake_discord.channel_id)
    assert isinstance(channel, discord.TextChannel)

    with pytest.raises(discord.HTTPException) as caught:
        await channel.send(file=discord.File(io.BytesIO(png_bytes()), filename="big.png"))

    assert caught.value.status == 413 and caught.value.code == 40005


class QuickReidentifyClient(PingClient):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """discord.py sleeps 5 s before a non-initial IDENTIFY; a test need not."""


async def test_invalid_session_makes_the_client_identify_again(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    await discord_client_runner(QuickReidentifyClient())

    await fake_discord.invalidate_session(resumable=False)
    await fake_discord.wait_until(lambda: fake_discord.identify_count == 2)
    interaction = await fake_discord.send_slash_command("echo", {"text": "after identify"})

    await fake_discord.wait_for_callback(interaction, timeout=3.0)
    assert fake_discord.resume_count == 0


async def test_followup_after_defer_edits_the_loading_message(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    await discord_client_runner(PingClient())

    interaction = await fake_discord.send_slash_command("thinking")
    await fake_discord.wait_for_request("POST", r"^/webhooks/")

    original = fake_discord.original_message(interaction)
    assert original is not None and original.content == "done thinking" and not original.is_loading
    assert interaction.followup_message_ids == []
    assert original.edited_by == ["followup"]


async def test_slow_callback_still_counts_as_acked(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    await discord_client_runner(PingClient())
    fake_discord.slow(r"POST /callback$", 0.3, times=None)

    interaction = await fake_discord.send_slash_command("echo", {"text": "slow"})
    await fake_discord.wait_for_message(lambda m: m.content == "slow")

    [callback] = fake_discord.find_requests("POST", r"/callback$")
    assert callback.status == 200
    assert interaction.callback_at == callback.arrived_at  # the delay is the platform's, not the bot's


async def test_global_rate_limit_on_channel_messages(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    client = await discord_client_runner(PingClient())
    fake_discord.rate_limit(r"^/channels/\d+/messages$", retry_after=0.1, is_global=True)
    channel = client.get_channel(fake_discord.channel_id)
    assert isinstance(channel, discord.TextChannel)

    await channel.send("after the storm")

    assert [p.status for p in fake_discord.find_requests("POST", r"^/channels/")] == [429, 200]
    assert [m.content for m in fake_discord.messages.values()] == ["after the storm"]


async def test_fault_switches_shared_with_every_fake(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    client = await discord_client_runner(PingClient())
    channel = client.get_channel(fake_discord.channel_id)
    assert isinstance(channel, discord.TextChannel)
    route = r"POST ^/channels/\d+/messages$"

    fake_discord.fail(route, times=None, status=403, error="Missing Access")
    for _ in range(2):
        with pytest.raises(discord.Forbidden) as refused:
            await channel.send("refused")
        assert refused.value.text == "Missing Access"
    fake_discord.clear_faults()
    fake_discord.slow(route, 0.3)
    started = time.monotonic()
    await channel.send("late but sent")

    assert time.monotonic() - started >= 0.3
    assert [p.status for p in fake_discord.find_requests("POST", r"^/channels/")] == [403, 403, 200]
    assert [m.content for m in fake_discord.messages.values()] == ["late but sent"]


async def test_unknown_routes_are_404_and_recorded(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    client = await discord_client_runner(PingClient())

    with pytest.raises(discord.NotFound):
        await client.http.request(discord.http.Route("GET", "/no/such/route"))

    assert fake_discord.find_requests("GET", r"^/no/such/route$")[0].status == 404


async def test_user_options_arrive_resolved_as_members(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    await discord_client_runner(PingClient())
    bob = fake_discord.add_user("bob")

    interaction = await fake_discord.send_slash_command(
        "whois", {"member": bob}, member_permissions=ADMINISTRATOR
    )
    await fake_discord.wait_for_callback(interaction)

    message = fake_discord.original_message(interaction)
    assert message is not None and message.content == f"bob {bob.id} True" and message.is_ephemeral
    assert fake_discord.channel_messages() == [message]


async def test_interaction_uploads_obey_its_attachment_size_limit(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    await discord_client_runner(PingClient())

    interaction = await fake_discord.send_slash_command("ping", attachment_size_limit=16)
    [edit] = await fake_discord.wait_for_request("PATCH", r"/messages/@original$")

    assert edit.status == 413
    assert fake_discord.original_message(interaction).attachments == []  # type: ignore[union-attr]


async def test_auto_sharded_client_asks_gateway_bot_and_connects(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    client = await discord_client_runner(
        discord.AutoShardedClient(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    )

    assert fake_discord.find_requests("GET", r"^/gateway/bot$")
    assert client.get_guild(fake_discord.guild.id) is not None
    assert client.shard_count == 1


class CancelView(discord.ui.View):
    """A persistent view whose button answers by updating its own message (callback type 7)."""

    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Cancel", custom_id="test:cancel", style=discord.ButtonStyle.danger)
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        await interaction.response.edit_message(content="cancelled", view=None)


async def test_update_message_callback_edits_the_buttons_message(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    client = await discord_client_runner(PingClient())
    client.add_view(CancelView())
    channel = client.get_channel(fake_discord.channel_id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("rendering…", view=CancelView())

    click = await fake_discord.click_button(sent.id, "test:cancel")

    assert (await fake_discord.wait_for_callback(click))["type"] == 7
    message = fake_discord.messages[sent.id]
    assert message.content == "cancelled" and message.components == []
    assert message.edited_by == ["callback"]
