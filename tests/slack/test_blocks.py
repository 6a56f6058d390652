"""`bot.slack.blocks`: the /imagine buttons fit Slack's limits and route back to the right job and image."""

import asyncio
from typing import Any

import pytest
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.buttons import Action, ButtonId, InvalidCustomId
from bot.slack.blocks import (
    ACTION_ID_PATTERN,
    MAX_ACTION_ID_LENGTH,
    MAX_BUTTON_TEXT_LENGTH,
    grid_blocks,
    parse_action,
    progress_blocks,
)
from tests.fakes.slack import FakeSlack, iter_actions
from tests.fakes.slack_apps import HttpStarter

BIGGEST_JOB_ID = 2**63 - 1


def actions_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [block for block in blocks if block["type"] == "actions"]


@pytest.mark.parametrize(("image_count", "actions_block_count"), [(1, 3), (4, 3), (9, 5)])
def test_grid_buttons_fit_slack_limits(image_count: int, actions_block_count: int) -> None:
    blocks = grid_blocks(BIGGEST_JOB_ID, image_count, caption="a red square")
    buttons = list(iter_actions(blocks))

    assert len(actions_blocks(blocks)) == actions_block_count
    assert all(len(block["elements"]) <= 5 for block in actions_blocks(blocks))
    assert len({b["action_id"] for b in buttons}) == len(buttons) == 2 * image_count + 2
    assert all(len(b["action_id"]) <= MAX_ACTION_ID_LENGTH for b in buttons)
    assert all(len(b["text"]["text"]) <= MAX_BUTTON_TEXT_LENGTH for b in buttons)
    assert all(ACTION_ID_PATTERN.match(b["action_id"]) for b in buttons)
    assert len({block["block_id"] for block in actions_blocks(blocks)}) == actions_block_count


def test_grid_labels_and_ids() -> None:
    blocks = grid_blocks(42, 4, caption="a red square")
    labels = [b["text"]["text"] for b in iter_actions(blocks)]
    assert labels == ["U1", "U2", "U3", "U4", "V1", "V2", "V3", "V4", "🔄 Reroll", "Parameters"]
    assert [parse_action(b) for b in iter_actions(blocks)][4] == ButtonId(Action.VARIATION, 42, 0)


def test_caption_is_plain_text_so_prompts_cannot_ping() -> None:
    [caption, *_] = grid_blocks(1, 1, caption="<!channel> *now*")
    assert caption["text"] == {"type": "plain_text", "text": "<!channel> *now*", "emoji": True}


def test_progress_has_cancel_in_danger_style() -> None:
    blocks = progress_blocks(7, status="Queued: position 3")
    cancel, info = iter_actions(blocks)
    assert (parse_action(cancel), cancel["style"]) == (ButtonId(Action.CANCEL, 7), "danger")
    assert parse_action(info) == ButtonId(Action.INFO, 7)


@pytest.mark.parametrize("action", [{"action_id": "other_app"}, {"action_id": "imagine:pick:0:1"}, {}])
def test_foreign_or_malformed_actions_are_refused(action: dict[str, Any]) -> None:
    with pytest.raises(InvalidCustomId):
        parse_action(action)


async def test_click_on_posted_grid_routes_to_job_and_image(
    fake_slack: FakeSlack, slack_client: AsyncWebClient, signing_secret: str, slack_http: HttpStarter
) -> None:
    app = AsyncApp(client=slack_client, signing_secret=signing_secret)
    clicked: asyncio.Queue[ButtonId] = asyncio.Queue()

    @app.action(ACTION_ID_PATTERN)
    async def imagine_button(ack: AsyncAck, action: dict[str, Any]) -> None:
        await ack()
        await clicked.put(parse_action(action))

    posted = await slack_client.chat_postMessage(
        channel="C0CHAN", text="Your grid", blocks=grid_blocks(42, 4, caption="a red square")
    )
    third_pick = list(iter_actions(fake_slack.message("C0CHAN", posted["ts"]).blocks))[2]

    slack = await slack_http(app)
    response = await slack.send_block_action(
        third_pick["action_id"], channel_id="C0CHAN", message_ts=posted["ts"]
    )
    assert response.status == 200
    assert await asyncio.wait_for(clicked.get(), 5) == ButtonId(Action.PICK, 42, 2)
