"""Prompt checks that need no database: each failure is a distinct `Refused` with the words users see."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from jobs import errors
from jobs.schema import jobs

# Newlines and tabs are whitespace a user may paste; every other control character is refused.
_ALLOWED_CONTROLS = frozenset("\n\r\t")


def clean_prompt(prompt: str, *, max_length: int) -> str:
    """Return the prompt with whitespace collapsed, or raise why it cannot be drawn."""
    if any(unicodedata.category(c) == "Cs" for c in prompt):  # lone surrogates: bytes that were not UTF-8
        raise errors.BadCharacters(
            "your prompt contains bytes that are not valid UTF-8 text: retype it or paste it as text"
        )
    if "\x00" in prompt:
        raise errors.NulCharacter("your prompt contains a NUL character (\\x00): remove it and try again")
    controls = sorted({c for c in prompt if unicodedata.category(c) == "Cc" and c not in _ALLOWED_CONTROLS})
    if controls:
        shown = ", ".join(f"U+{ord(c):04X}" for c in controls[:3])
        raise errors.ControlCharacters(
            f"your prompt contains control characters ({shown}): remove them and try again"
        )
    cleaned = " ".join(prompt.split())
    if not cleaned:
        raise errors.EmptyPrompt("your prompt is empty: describe the picture you want, e.g. `a cat in a hat`")
    if len(cleaned) > max_length:
        raise errors.PromptTooLong(
            f"your prompt is {len(cleaned)} characters long; the limit is {max_length}: shorten it"
        )
    if not any(unicodedata.category(c)[0] in "LN" for c in cleaned):
        raise errors.NoWords(
            "your prompt has no letters or digits (emoji and symbols alone cannot be drawn): "
            "describe the picture in words"
        )
    return cleaned


def find_blocked_word(prompt: str, blocked_words: Iterable[str]) -> str | None:
    """The first blocked word in the prompt as a whole word, any case (`cat`: `Cat!` yes, `catalog` no)."""
    folded = prompt.casefold()
    for word in blocked_words:
        word = word.strip()
        if word and re.search(rf"(?<!\w){re.escape(word.casefold())}(?!\w)", folded):
            return word
    return None


def check_requester(platform: str, user_id: str, user_name: str, guild_id: str, channel_id: str) -> None:
    """Who asks and where must fit the jobs table's columns, on every engine alike (SQLite would store a
    too long id as it is, Postgres would refuse the statement): refuse before anything is written."""
    if not user_id.strip():
        raise errors.BadRequester("a request needs a user id: nobody can be charged for an anonymous one")
    for name, value in (
        ("platform", platform),
        ("user id", user_id),
        ("user name", user_name),
        ("guild id", guild_id),
        ("channel id", channel_id),
    ):
        limit = COLUMN_LENGTHS[name]
        if len(value) > limit:
            raise errors.BadRequester(f"the {name} is {len(value)} characters long; the most is {limit}")


def _length(column: str) -> int:
    length = getattr(jobs.c[column].type, "length", None)
    assert isinstance(length, int), f"jobs.{column} has no length"
    return length


# the limits are the schema's own
COLUMN_LENGTHS = {
    "platform": _length("platform"),
    "user id": _length("user_id"),
    "user name": _length("user_name"),
    "guild id": _length("guild_id"),
    "channel id": _length("channel_id"),
}
