"""Reading ``/imagine`` text typed in Slack: the prompt, and the options mixed into it.

Slack hands a slash command its arguments as one string, so options are parsed here, forgivingly:

- ``--images 4``, ``--images=4``, ``-n 4`` and ``images=4`` all mean the same;
- dashes that Slack (or the user's OS) autocorrected count as ``--``: ``—images 4``, ``–seed 7``;
- options may come before, after or among the prompt's words;
- Slack's HTML escaping (``&amp;`` ``&lt;`` ``&gt;``) is undone, and a prompt wrapped in quotes
  loses them.

Values stay strings: `jobs.models.JobOptions.parse` checks them, so Discord, Slack and the CLI
refuse the same values in the same words. This module only refuses what it alone can see (an
unknown ``--option``, a missing value, an option given twice), raising `jobs.errors.BadOption`
(or `UnknownOption`) whose message is meant for the user and ends with the usage line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from jobs import errors
from jobs.options import JobOptions

USAGE = (
    "Usage: `/imagine <prompt> [--images N] [--seed S] [--guidance G] [--temperature T]"
    " [--top-k K] [--top-p P]` (e.g. `/imagine a watercolor fox --images 4 --seed 7`)"
)

# Every spelling a user may type, to the `JobOptions` field it sets.
_OPTION_FROM_ALIAS: dict[str, str] = {
    "images": "images",
    "image": "images",
    "n": "images",
    "num": "images",
    "count": "images",
    "seed": "seed",
    "s": "seed",
    "guidance": "guidance_scale",
    "guidance_scale": "guidance_scale",
    "scale": "guidance_scale",
    "cond_scale": "guidance_scale",
    "cfg": "guidance_scale",
    "g": "guidance_scale",
    "temperature": "temperature",
    "temp": "temperature",
    "t": "temperature",
    "top_k": "top_k",
    "topk": "top_k",
    "k": "top_k",
    "top_p": "top_p",
    "topp": "top_p",
    "p": "top_p",
    "model": "model",
}
# How each option is spelled back to the user.
_FLAG_OF_OPTION = {
    "images": "--images",
    "seed": "--seed",
    "guidance_scale": "--guidance",
    "temperature": "--temperature",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "model": "--model",
}
_EXAMPLE_VALUES = {
    "images": "4",
    "seed": "42",
    "guidance_scale": "10",
    "temperature": "1.0",
    "top_k": "256",
    "top_p": "0.9",
    "model": "dalle-mini",
}
_HELP_ALIASES = frozenset({"help", "h"})

# Hyphen-minus, and the dashes autocorrect turns "--" or "-" into: ‐ ‑ ‒ – — ― −.
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
_LONG_PREFIX = re.compile(rf"^(?:--|[{_DASHES[1:]}]-?)")  # "--", or one autocorrected dash (+ "-")
_FLAG = re.compile(rf"^[{_DASHES}]+(?P<name>[a-z][a-z_-]*)(?:[=:](?P<value>.*))?$", re.IGNORECASE)
_ASSIGNMENT = re.compile(r"^(?P<name>[a-z][a-z_-]+)=(?P<value>.*)$", re.IGNORECASE)
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "\u00ab": "\u00bb"}


class HelpRequested(errors.Refused):
    """The user asked for help (``--help``); the message is the usage line."""


@dataclass(frozen=True)
class ImagineText:
    """What ``/imagine`` text asked for; ``options`` go to `JobOptions.parse` as they are."""

    prompt: str
    options: dict[str, str] = field(default_factory=dict)


def parse_imagine_text(text: str) -> ImagineText:
    """Split slash-command text into the prompt and its options; raise `errors.BadOption` on misuse.

    The prompt is returned with whitespace collapsed but otherwise unchecked (that is
    `jobs.validation.clean_prompt`'s job, which also refuses an empty one).
    """
    words = unescape_slack(text).split()
    prompt_words: list[str] = []
    options: dict[str, str] = {}
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        option = _read_option(word)
        if option is None:
            prompt_words.append(word)
            continue
        name, value = option
        if value is None:
            if index >= len(words) or _read_option(words[index]) is not None:
                raise errors.BadOption(f"{flag_of(name)} needs a value, e.g. {_example(name)}. {USAGE}")
            value = words[index]
            index += 1
        _store(options, name, _normalize_value(value))
    return ImagineText(prompt=_unquote(" ".join(prompt_words)), options=options)


def unescape_slack(text: str) -> str:
    """Undo the escaping Slack applies to slash-command text (only these three are escaped)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _read_option(word: str) -> tuple[str, str | None] | None:
    """``(option, value or None)`` if ``word`` is an option; None if it belongs to the prompt."""
    flag = _FLAG.match(word)
    if flag:
        alias = flag["name"].lower().replace("-", "_")
        if alias in _HELP_ALIASES:
            raise HelpRequested(USAGE)
        if (name := _option_of(alias)) is not None:
            return name, flag["value"] or None
        if _LONG_PREFIX.match(word):
            raise errors.UnknownOption(f"I don't know the option `{word}`. {USAGE}")
        return None  # "-ish", "-fi": one hyphen before an unknown word is prompt text
    assignment = _ASSIGNMENT.match(word)
    if assignment:
        alias = assignment["name"].lower().replace("-", "_")
        if (name := _option_of(alias)) is not None and assignment["value"]:
            return name, assignment["value"]
    return None


def _option_of(alias: str) -> str | None:
    """The `JobOptions` field a typed name sets: an alias, or the field's own name."""
    return _OPTION_FROM_ALIAS.get(alias) or (alias if alias in JobOptions.NAMES else None)


def flag_of(name: str) -> str:
    """How option `name` is spelled back to the user (`--guidance`, `--top-k`)."""
    return _FLAG_OF_OPTION.get(name) or f"--{name.replace('_', '-')}"


def _normalize_value(value: str) -> str:
    """A typographic minus becomes "-", a decimal comma a point ("7,5" → "7.5")."""
    value = value.strip()
    if value[:1] in _DASHES:
        value = "-" + value[1:]
    if re.fullmatch(r"-?\d+,\d+", value):
        value = value.replace(",", ".")
    return value


def _store(options: dict[str, str], name: str, value: str) -> None:
    previous = options.get(name)
    if previous is not None and previous != value:
        flag = flag_of(name)
        raise errors.BadOption(f"{flag} is given twice ({previous} and {value}): give it once. {USAGE}")
    options[name] = value


def _unquote(prompt: str) -> str:
    """``"a cat"`` → ``a cat``: quotes around the whole prompt are not part of it."""
    if len(prompt) >= 2 and _QUOTES.get(prompt[0]) == prompt[-1]:
        inner = prompt[1:-1]
        if prompt[0] not in inner and prompt[-1] not in inner:  # not `"a cat" and "a dog"`
            return inner.strip()
    return prompt


def _example(name: str) -> str:
    value = _EXAMPLE_VALUES.get(name)
    return f"`{flag_of(name)} {value}`" if value else f"`{flag_of(name)} …`"
