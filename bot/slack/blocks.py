"""Block Kit for /imagine messages in Slack: the buttons under a grid and under a job in progress.

Buttons carry their whole state in their ``action_id``, in the same ``imagine:<action>:<job_id>
[:<image_index>]`` form as Discord's custom_ids (`bot.buttons.ButtonId`), so a click on a
message posted before a restart is routed by pattern (``@app.action(ACTION_ID_PATTERN)``) and
parsed with `parse_action`, with no memory of the message.

Slack's limits (its Block Kit reference): ``action_id`` ≤ 255 characters, unique
within its block; ``value`` ≤ 2000; button text ≤ 75; ``style`` ``primary`` or ``danger``; 50 blocks
a message. Actions blocks keep to 5 buttons each, the long-documented limit (newer docs allow 25).
"""

from __future__ import annotations

import re
from typing import Any

from bot import messages
from bot.buttons import (
    Action,
    ButtonId,
    InvalidCustomId,
    grid_button_rows,
    pick_button_rows,
    progress_button_row,
    upscaled_button_rows,
)
from jobs.models import Kind

MAX_ACTION_ID_LENGTH = 255
MAX_BUTTON_TEXT_LENGTH = 75
MAX_SECTION_TEXT_LENGTH = 3000
#: What ``@app.action(…)`` registers to receive every /imagine button.
ACTION_ID_PATTERN = re.compile(r"^imagine:")

_LABELS = {  # the words are bot/messages.py's, shared with Discord
    Action.PICK: messages.LABEL_PICK,
    Action.VARIATION: messages.LABEL_VARIATION,
    Action.REROLL: f"🔄 {messages.LABEL_REROLL}",
    Action.CANCEL: messages.LABEL_CANCEL,
    Action.INFO: messages.LABEL_INFO,
    Action.UPSCALE: f"⬆️ {messages.LABEL_UPSCALE}",
}
_STYLES = {Action.CANCEL: "danger", Action.UPSCALE: "primary"}


def button(button_id: ButtonId) -> dict[str, Any]:
    """One Block Kit button; the ``value`` repeats the id so either field routes the click."""
    number = (
        ""
        if button_id.image_index is None or button_id.action is Action.UPSCALE
        else str(button_id.image_index + 1)
    )
    element: dict[str, Any] = {
        "type": "button",
        "action_id": button_id.custom_id,
        "value": button_id.custom_id,
        "text": {
            "type": "plain_text",
            "text": _LABELS[button_id.action].format(number=number),
            "emoji": True,
        },
    }
    if style := _STYLES.get(button_id.action):
        element["style"] = style
    return element


def actions_block(buttons: list[ButtonId], *, block_id: str) -> dict[str, Any]:
    return {"type": "actions", "block_id": block_id, "elements": [button(b) for b in buttons]}


def grid_blocks(
    job_id: int, image_count: int, *, caption: str, kind: Kind = Kind.IMAGINE
) -> list[dict[str, Any]]:
    """The message under an uploaded grid: a caption, then picks, variations, reroll and parameters
    (under a pick: V1, ⬆ Upscale, reroll and parameters; under an upscaled picture: parameters)."""
    if kind is Kind.PICK:
        rows = pick_button_rows(job_id)
    elif kind is Kind.UPSCALE:
        rows = upscaled_button_rows(job_id)
    else:
        rows = grid_button_rows(job_id, image_count)
    return [
        _section(caption),
        *(actions_block(row, block_id=f"imagine_grid_{job_id}_{index}") for index, row in enumerate(rows)),
    ]


def progress_blocks(
    job_id: int, *, status: str, preview_file_id: str | None = None, preview_alt: str = ""
) -> list[dict[str, Any]]:
    """The placeholder of a queued or rendering job (edited with chat.update): status, the preview of the
    grid so far (an uploaded, unshared file), cancel, parameters."""
    blocks = [_section(status)]
    if preview_file_id is not None:
        blocks.append(
            {"type": "image", "slack_file": {"id": preview_file_id}, "alt_text": preview_alt[:2000]}
        )
    blocks.append(actions_block(progress_button_row(job_id), block_id=f"imagine_progress_{job_id}"))
    return blocks


def parse_action(action: dict[str, Any]) -> ButtonId:
    """The `ButtonId` of a ``block_actions`` action; raise `InvalidCustomId` if it is not ours."""
    action_id = action.get("action_id")
    if not isinstance(action_id, str):
        raise InvalidCustomId(f"not an /imagine button: {action_id!r}")
    return ButtonId.parse(action_id)


def _section(text: str) -> dict[str, Any]:
    """Plain text, never mrkdwn: a prompt like ``<!channel>`` or ``*x*`` is shown, not interpreted."""
    if len(text) > MAX_SECTION_TEXT_LENGTH:
        text = text[: MAX_SECTION_TEXT_LENGTH - 1] + "…"
    return {"type": "section", "text": {"type": "plain_text", "text": text, "emoji": True}}
