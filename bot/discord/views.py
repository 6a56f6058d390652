"""The buttons under /imagine messages in Discord, routed by custom_id pattern so they survive restarts.

Each action has a `discord.ui.DynamicItem` whose template is `bot.buttons.template(action)`; the bot
registers them all once with `client.add_dynamic_items(*BUTTON_ITEMS)` in `setup_hook`, and a click on
any message, however old, arrives at `ImagineButtonHandler.on_imagine_button(interaction, button_id)` on
the client (discord.py examples/views/dynamic_counter.py). Who may press what (cancel: the requester or
an admin) is the handler's check, against the job; this module only routes.

Views are built from these same items (`grid_view`, `progress_view`), so discord.py routes a click once,
through the dynamic item, whether or not the view object is still in memory.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import discord

from bot import messages
from bot.buttons import Action, ButtonId, grid_button_rows, progress_button_row, template

_LABELS = {  # the words are bot/messages.py's, shared with Slack; 🔄 and ℹ️ show only their emoji
    Action.PICK: messages.LABEL_PICK,
    Action.VARIATION: messages.LABEL_VARIATION,
    Action.REROLL: None,
    Action.CANCEL: messages.LABEL_CANCEL,
    Action.INFO: None,
    Action.UPSCALE: messages.LABEL_UPSCALE,
}
_EMOJI = {Action.REROLL: "🔄", Action.CANCEL: "❌", Action.INFO: "ℹ️", Action.UPSCALE: "⬆️"}
_STYLES = {
    Action.PICK: discord.ButtonStyle.secondary,
    Action.VARIATION: discord.ButtonStyle.secondary,
    Action.REROLL: discord.ButtonStyle.primary,
    Action.CANCEL: discord.ButtonStyle.danger,
    Action.INFO: discord.ButtonStyle.secondary,
    Action.UPSCALE: discord.ButtonStyle.success,
}


@runtime_checkable
class ImagineButtonHandler(Protocol):
    """What the Discord client implements to act on /imagine buttons."""

    async def on_imagine_button(self, interaction: discord.Interaction, button_id: ButtonId) -> None: ...


def make_button(button_id: ButtonId, *, row: int | None = None) -> discord.ui.Button[Any]:
    """The plain button for `button_id`: label U1..U9 / V1..V9 or an emoji, its style, its custom_id."""
    number = (
        ""
        if button_id.image_index is None or button_id.action is Action.UPSCALE
        else str(button_id.image_index + 1)
    )
    label = _LABELS[button_id.action]
    return discord.ui.Button(
        label=None if label is None else label.format(number=number),
        emoji=_EMOJI.get(button_id.action),
        style=_STYLES[button_id.action],
        custom_id=button_id.custom_id,
        row=row,
    )


class _ImagineButton:
    """Shared body of the per-action dynamic items below (one template per action)."""

    action: ClassVar[Action]

    def __init__(self, button_id: ButtonId, *, row: int | None = None) -> None:
        if button_id.action is not self.action:
            raise ValueError(f"{type(self).__name__} is for {self.action} buttons, got {button_id.action}")
        # super() is the subclass's DynamicItem (see their bases); mypy checks the mixin against object
        super().__init__(make_button(button_id), row=row)  # type: ignore[call-arg]
        self.button_id = button_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> Self:
        return cls(ButtonId.from_match(cls.action, match))

    async def callback(self, interaction: discord.Interaction) -> None:
        client = interaction.client
        if not isinstance(client, ImagineButtonHandler):
            raise TypeError(
                f"{type(client).__name__} has no on_imagine_button; it cannot handle {self.button_id}"
            )
        await client.on_imagine_button(interaction, self.button_id)


class PickButton(
    _ImagineButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=template(Action.PICK)
):
    action = Action.PICK


class VariationButton(
    _ImagineButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=template(Action.VARIATION)
):
    action = Action.VARIATION


class RerollButton(
    _ImagineButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=template(Action.REROLL)
):
    action = Action.REROLL


class CancelButton(
    _ImagineButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=template(Action.CANCEL)
):
    action = Action.CANCEL


class InfoButton(
    _ImagineButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=template(Action.INFO)
):
    action = Action.INFO


class UpscaleButton(
    _ImagineButton, discord.ui.DynamicItem[discord.ui.Button[Any]], template=template(Action.UPSCALE)
):
    action = Action.UPSCALE


#: Register once: `client.add_dynamic_items(*BUTTON_ITEMS)`.
BUTTON_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    PickButton,
    VariationButton,
    RerollButton,
    CancelButton,
    InfoButton,
    UpscaleButton,
)
_ITEM_FOR_ACTION: dict[Action, type[discord.ui.DynamicItem[Any]]] = {
    PickButton.action: PickButton,
    VariationButton.action: VariationButton,
    RerollButton.action: RerollButton,
    CancelButton.action: CancelButton,
    InfoButton.action: InfoButton,
    UpscaleButton.action: UpscaleButton,
}


def button_item(button_id: ButtonId, *, row: int | None = None) -> discord.ui.DynamicItem[Any]:
    """The dynamic item that shows and routes `button_id`."""
    return _ITEM_FOR_ACTION[button_id.action](button_id, row=row)


def view_of_rows(rows: list[list[ButtonId]]) -> discord.ui.View:
    """A persistent view (no timeout) with each list of buttons in its own action row."""
    view = discord.ui.View(timeout=None)
    for row_index, row in enumerate(rows):
        for button_id in row:
            view.add_item(button_item(button_id, row=row_index))
    return view


def grid_view(job_id: int, image_count: int) -> discord.ui.View:
    """Under a finished grid: U1..Un, V1..Vn, 🔄 reroll and ℹ️ parameters."""
    return view_of_rows(grid_button_rows(job_id, image_count))


def progress_view(job_id: int) -> discord.ui.View:
    """Under a queued or rendering job: cancel and parameters."""
    return view_of_rows([progress_button_row(job_id)])
