"""The custom_ids of the buttons under an /imagine grid: `imagine:<action>:<job_id>[:<image_index>]`.

A button carries its whole state in its custom_id, so a click on a message posted before a restart is
routed by pattern (`discord.ui.DynamicItem` with `template(action)`) and needs no memory of the message
(discord.py examples/views/dynamic_counter.py). Discord allows 1-100 characters per custom_id and
5 buttons in each of at most 5 action rows (Discord's component reference).

`image_index` is 0-based, as in the jobs table (`jobs.models.Image.index`); labels show it 1-based (U1..U9).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from jobs.models import MAX_JOB_ID

PREFIX = "imagine"
MAX_CUSTOM_ID_LENGTH = 100  # characters; Discord's limit
MAX_BUTTONS_PER_ROW = 5
MAX_ROWS = 5
MAX_IMAGES = 9  # the /imagine `images` option's upper bound


class Action(enum.StrEnum):
    PICK = "pick"  # post one image of the grid on its own, full size
    VARIATION = "variation"  # new images starting from one image's tokens
    REROLL = "reroll"  # the same prompt and options with a new seed
    CANCEL = "cancel"  # stop a queued or rendering job (the requester or an admin)
    INFO = "info"  # the job's parameters, shown ephemerally
    UPSCALE = "upscale"  # one image 4× larger (under a picked image), posted as a reply to it


ACTIONS_ON_ONE_IMAGE = frozenset({Action.PICK, Action.VARIATION, Action.UPSCALE})

_JOB_ID_PATTERN = r"(?P<job_id>[1-9][0-9]{0,18})"
_IMAGE_INDEX_PATTERN = r"(?P<image_index>[0-8])"


class InvalidCustomId(ValueError):
    """A custom_id is not one of ours, or names an impossible job or image; the click cannot be routed."""


def template(action: Action) -> str:
    """The regex a DynamicItem of `action` matches its custom_ids with (anchored by discord.py)."""
    pattern = f"{PREFIX}:{action.value}:{_JOB_ID_PATTERN}"
    if action in ACTIONS_ON_ONE_IMAGE:
        pattern += f":{_IMAGE_INDEX_PATTERN}"
    return pattern


_MATCHERS: dict[Action, re.Pattern[str]] = {action: re.compile(template(action)) for action in Action}


@dataclass(frozen=True)
class ButtonId:
    """What one button does, to which job and image; `custom_id` is its wire form."""

    action: Action
    job_id: int
    image_index: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.job_id <= MAX_JOB_ID:
            raise InvalidCustomId(f"job id must be from 1 to {MAX_JOB_ID}, got {self.job_id}")
        if self.action in ACTIONS_ON_ONE_IMAGE:
            if self.image_index is None or not 0 <= self.image_index < MAX_IMAGES:
                raise InvalidCustomId(
                    f"{self.action} needs an image index from 0 to {MAX_IMAGES - 1}, got {self.image_index}"
                )
        elif self.image_index is not None:
            raise InvalidCustomId(f"{self.action} applies to the whole job, not image {self.image_index}")

    @property
    def custom_id(self) -> str:
        parts = [PREFIX, self.action.value, str(self.job_id)]
        if self.image_index is not None:
            parts.append(str(self.image_index))
        return ":".join(parts)

    @classmethod
    def from_match(cls, action: Action, match: re.Match[str]) -> ButtonId:
        """The ButtonId a DynamicItem's `from_custom_id` receives as `match` for `template(action)`."""
        groups = match.groupdict()
        image_index = groups.get("image_index")
        return cls(action, int(groups["job_id"]), None if image_index is None else int(image_index))

    @classmethod
    def parse(cls, custom_id: str) -> ButtonId:
        """Read a custom_id; raise InvalidCustomId for one that is not ours or is malformed."""
        for action, matcher in _MATCHERS.items():
            if match := matcher.fullmatch(custom_id):
                return cls.from_match(action, match)
        raise InvalidCustomId(f"not an /imagine button: {custom_id[:MAX_CUSTOM_ID_LENGTH]!r}")


def grid_button_rows(job_id: int, image_count: int) -> list[list[ButtonId]]:
    """The buttons under a finished grid, by action row: picks, variations, then reroll and info.

    9 images take 2 rows of picks and 2 of variations (5 buttons a row), the 5th row the controls:
    exactly Discord's 5-row limit.
    """
    if not 1 <= image_count <= MAX_IMAGES:
        raise ValueError(f"image_count must be from 1 to {MAX_IMAGES}, got {image_count}")
    rows: list[list[ButtonId]] = []
    for action in (Action.PICK, Action.VARIATION):
        buttons = [ButtonId(action, job_id, index) for index in range(image_count)]
        rows.extend(_chunks(buttons, MAX_BUTTONS_PER_ROW))
    rows.append([ButtonId(Action.REROLL, job_id), ButtonId(Action.INFO, job_id)])
    return rows


def pick_button_rows(job_id: int) -> list[list[ButtonId]]:
    """Under a picked image: V1 and ⬆ Upscale, then reroll and info (2 rows: within every limit)."""
    return [
        [ButtonId(Action.VARIATION, job_id, 0), ButtonId(Action.UPSCALE, job_id, 0)],
        [ButtonId(Action.REROLL, job_id), ButtonId(Action.INFO, job_id)],
    ]


def upscaled_button_rows(job_id: int) -> list[list[ButtonId]]:
    """Under an upscaled picture: its parameters (it is the end of the line: no variations of it)."""
    return [[ButtonId(Action.INFO, job_id)]]


def progress_button_row(job_id: int) -> list[ButtonId]:
    """The buttons under a queued or rendering job's message: cancel and info."""
    return [ButtonId(Action.CANCEL, job_id), ButtonId(Action.INFO, job_id)]


def _chunks(buttons: list[ButtonId], size: int) -> list[list[ButtonId]]:
    return [buttons[start : start + size] for start in range(0, len(buttons), size)]
