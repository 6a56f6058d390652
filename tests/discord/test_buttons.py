"""Button custom_ids: wire form, parsing, limits, and routing by a real DynamicItem through the fake."""

from __future__ import annotations

import re
from typing import Any

import discord
import pytest

from bot.buttons import (
    ACTIONS_ON_ONE_IMAGE,
    MAX_BUTTONS_PER_ROW,
    MAX_CUSTOM_ID_LENGTH,
    MAX_JOB_ID,
    MAX_ROWS,
    Action,
    ButtonId,
    InvalidCustomId,
    grid_button_rows,
    progress_button_row,
    template,
)
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_client import FAST_GUILD_READY_TIMEOUT_S


@pytest.mark.parametrize(
    ("button", "custom_id"),
    [
        (ButtonId(Action.PICK, 17, 0), "imagine:pick:17:0"),
        (ButtonId(Action.VARIATION, 17, 8), "imagine:variation:17:8"),
        (ButtonId(Action.REROLL, 17), "imagine:reroll:17"),
        (ButtonId(Action.CANCEL, 17), "imagine:cancel:17"),
        (ButtonId(Action.INFO, 17), "imagine:info:17"),
    ],
)
def test_custom_id_round_trips(button: ButtonId, custom_id: str) -> None:
    assert button.custom_id == custom_id
    assert ButtonId.parse(custom_id) == button


@pytest.mark.parametrize(
    "custom_id",
    [
        "imagine:pick:17",  # a pick needs an image
        "imagine:reroll:17:0",  # a reroll takes none
        "imagine:pick:17:9",  # images are 0..8
        "imagine:pick:017:0",  # no leading zeros: one id, one spelling
        "imagine:pick:0:0",
        "imagine:upscale:17",  # an upscale names its image
        "imagine:zoom:17:0",  # not an action
        "imagine:info:17 ",
        "other-bot:pick:17:0",
        "",
        f"imagine:info:{MAX_JOB_ID + 1}",  # 19 digits but past a 64-bit key
    ],
)
def test_foreign_or_malformed_ids_are_refused(custom_id: str) -> None:
    with pytest.raises(InvalidCustomId):
        ButtonId.parse(custom_id)


@pytest.mark.parametrize(
    ("action", "job_id", "image_index"),
    [(Action.PICK, 1, None), (Action.VARIATION, 1, 9), (Action.INFO, 1, 0), (Action.CANCEL, 0, None)],
)
def test_impossible_buttons_cannot_be_built(action: Action, job_id: int, image_index: int | None) -> None:
    with pytest.raises(InvalidCustomId):
        ButtonId(action, job_id, image_index)


def test_longest_id_fits_discords_limit() -> None:
    longest = max(
        (ButtonId(action, MAX_JOB_ID, 8 if action in ACTIONS_ON_ONE_IMAGE else None) for action in Action),
        key=lambda b: len(b.custom_id),
    )
    assert len(longest.custom_id) <= MAX_CUSTOM_ID_LENGTH


def test_templates_match_exactly_their_own_action() -> None:
    for action in Action:
        pattern = re.compile(template(action))
        for other in Action:
            button = ButtonId(other, 5, 3 if other in ACTIONS_ON_ONE_IMAGE else None)
            assert bool(pattern.fullmatch(button.custom_id)) == (other is action)


@pytest.mark.parametrize("image_count", range(1, 10))
def test_grid_rows_respect_discords_layout(image_count: int) -> None:
    rows = grid_button_rows(7, image_count)

    assert len(rows) <= MAX_ROWS
    assert all(1 <= len(row) <= MAX_BUTTONS_PER_ROW for row in rows)
    ids = [button.custom_id for row in rows for button in row]
    assert len(ids) == len(set(ids)) == 2 * image_count + 2
    assert rows[-1] == [ButtonId(Action.REROLL, 7), ButtonId(Action.INFO, 7)]


def test_progress_row_offers_cancel_and_info() -> None:
    assert [b.custom_id for b in progress_button_row(3)] == ["imagine:cancel:3", "imagine:info:3"]


def test_grid_of_ten_is_refused() -> None:
    with pytest.raises(ValueError, match="image_count"):
        grid_button_rows(7, 10)


class PickProbe(discord.ui.DynamicItem[discord.ui.Button], template=template(Action.PICK)):
    """Routes `imagine:pick:*` clicks the way the frontend will, recording the parsed ButtonId."""

    def __init__(self, button: ButtonId) -> None:
        super().__init__(
            discord.ui.Button(label=f"U{(button.image_index or 0) + 1}", custom_id=button.custom_id)
        )
        self.button = button

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> PickProbe:
        return cls(ButtonId.from_match(Action.PICK, match))

    async def callback(self, interaction: discord.Interaction) -> None:  # type: ignore[override]
        interaction.client.picked.append(self.button)  # type: ignore[attr-defined]
        await interaction.response.defer()


class ProbeClient(discord.Client):
    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default(), guild_ready_timeout=FAST_GUILD_READY_TIMEOUT_S)
        self.picked: list[ButtonId] = []

    async def setup_hook(self) -> None:
        self.add_dynamic_items(PickProbe)


async def test_pick_click_on_a_posted_grid_is_routed_by_template(
    fake_discord: FakeDiscord, discord_client_runner: Any
) -> None:
    client = await discord_client_runner(ProbeClient())
    view = discord.ui.View(timeout=None)
    for button in grid_button_rows(123456789, 4)[0]:
        view.add_item(PickProbe(button))
    channel = client.get_channel(fake_discord.channel_id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("grid", view=view)

    click = await fake_discord.click_button(sent.id, "imagine:pick:123456789:3")
    await fake_discord.wait_for_callback(click)

    assert client.picked == [ButtonId(Action.PICK, 123456789, 3)]
