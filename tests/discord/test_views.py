"""The /imagine buttons as a real discord.py client posts and routes them through the fake Discord."""

from __future__ import annotations

from typing import Any

import discord
import pytest

from bot.buttons import MAX_BUTTONS_PER_ROW, Action, ButtonId
from bot.discord.views import BUTTON_ITEMS, button_item, grid_view, make_button, progress_view
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_client import FAST_GUILD_READY_TIMEOUT_S


class ButtonClient(discord.Client):
    """Implements ImagineButtonHandler by recording what was pressed."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=FAST_GUILD_READY_TIMEOUT_S)
        self.pressed: list[ButtonId] = []

    async def setup_hook(self) -> None:
        self.add_dynamic_items(*BUTTON_ITEMS)

    async def on_imagine_button(self, interaction: discord.Interaction, button_id: ButtonId) -> None:
        self.pressed.append(button_id)
        await interaction.response.defer()


async def post(client: discord.Client, fake: FakeDiscord, view: discord.ui.View) -> int:
    channel = client.get_channel(fake.channel_id)
    assert isinstance(channel, discord.TextChannel)
    return (await channel.send("job", view=view)).id


def test_labels_and_styles() -> None:
    assert make_button(ButtonId(Action.PICK, 1, 0)).label == "U1"
    assert make_button(ButtonId(Action.VARIATION, 1, 8)).label == "V9"
    cancel = make_button(ButtonId(Action.CANCEL, 1))
    assert cancel.style is discord.ButtonStyle.danger and str(cancel.emoji) == "❌"
    reroll = make_button(ButtonId(Action.REROLL, 1))
    assert reroll.label is None and str(reroll.emoji) == "🔄"


def test_item_refuses_another_actions_id() -> None:
    with pytest.raises(ValueError, match="pick"):
        BUTTON_ITEMS[0](ButtonId(Action.INFO, 1))


async def test_grid_of_nine_uses_five_rows(fake_discord: FakeDiscord, discord_client_runner: Any) -> None:
    client = await discord_client_runner(ButtonClient())

    message = fake_discord.messages[await post(client, fake_discord, grid_view(77, 9))]

    rows = [[c["custom_id"] for c in row["components"]] for row in message.components]
    assert [len(row) for row in rows] == [5, 4, 5, 4, 2]
    assert all(len(row) <= MAX_BUTTONS_PER_ROW for row in rows)
    assert rows[0][0] == "imagine:pick:77:0" and rows[3][-1] == "imagine:variation:77:8"
    assert rows[4] == ["imagine:reroll:77", "imagine:info:77"]


async def test_every_action_is_routed_to_the_handler_after_a_restart(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    first = await discord_client_runner(ButtonClient())
    grid_id = await post(first, fake_discord, grid_view(5, 2))
    progress_id = await post(first, fake_discord, progress_view(6))
    await first.close()
    client = await discord_client_runner(ButtonClient())

    expected = [
        (grid_id, ButtonId(Action.PICK, 5, 1)),
        (grid_id, ButtonId(Action.VARIATION, 5, 0)),
        (grid_id, ButtonId(Action.REROLL, 5)),
        (grid_id, ButtonId(Action.INFO, 5)),
        (progress_id, ButtonId(Action.CANCEL, 6)),
    ]
    for message_id, button_id in expected:
        click = await fake_discord.click_button(message_id, button_id.custom_id)
        assert (await fake_discord.wait_for_callback(click))["type"] == 6

    assert client.pressed == [button_id for _, button_id in expected]
    assert first.pressed == []


async def test_a_client_without_a_handler_fails_loudly(
    fake_discord: FakeDiscord, discord_client_runner: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class NoHandler(discord.Client):
        async def setup_hook(self) -> None:
            self.add_dynamic_items(*BUTTON_ITEMS)

    client = await discord_client_runner(
        NoHandler(intents=discord.Intents.default(), guild_ready_timeout=FAST_GUILD_READY_TIMEOUT_S)
    )
    view = discord.ui.View(timeout=None)
    view.add_item(button_item(ButtonId(Action.INFO, 9)))
    message_id = await post(client, fake_discord, view)

    await fake_discord.click_button(message_id, "imagine:info:9")

    # discord.py logs a dynamic item's exception (discord.ui.view) rather than calling View.on_error.
    record = await fake_discord.wait_until(lambda: next((r for r in caplog.records if r.exc_info), None))
    error = record.exc_info[1]  # type: ignore[index]
    assert isinstance(error, TypeError) and "on_imagine_button" in str(error)
