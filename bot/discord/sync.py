"""Sync the slash commands only when their definitions changed (Discord allows 200 creates a day per
guild, and a bulk overwrite on every start would spend them; Discord's application commands reference).

The definitions discord.py would send (`Command.to_dict`) are hashed; the hash of the last successful
sync is kept per application and target (global, or the dev guild) in a small JSON file in the data
directory. A dev guild gets the global commands copied to it: guild commands update at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

log = logging.getLogger(__name__)

SYNC_STATE_FILENAME = "discord-commands.json"


def definitions(tree: app_commands.CommandTree[Any], guild: discord.abc.Snowflake | None) -> list[Any]:
    """What `tree.sync(guild=guild)` sends, in a stable order."""
    payload = [command.to_dict(tree) for command in tree.get_commands(guild=guild)]
    return sorted(payload, key=lambda command: (command.get("type", 1), command["name"]))


def definitions_hash(payload: list[Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _read_state(path: Path) -> dict[str, str]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # a damaged file only costs one extra sync
        log.warning("command sync state unreadable, syncing: %s", exc, extra={"action": "sync_state_bad"})
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(path: Path, state: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(partial, path)


async def sync_if_changed(
    tree: app_commands.CommandTree[Any], *, application_id: int, state_path: Path, dev_guild_id: int | None
) -> bool:
    """Sync to the dev guild (if set) or globally, unless these definitions were synced before; True if
    it synced."""
    guild = discord.Object(id=dev_guild_id) if dev_guild_id else None
    if guild is not None:
        tree.copy_global_to(guild=guild)
    digest = definitions_hash(definitions(tree, guild))
    key = f"{application_id}:{'global' if guild is None else f'guild:{guild.id}'}"
    state = _read_state(state_path)
    if state.get(key) == digest:
        log.info("commands unchanged, not syncing", extra={"action": "commands_unchanged", "target": key})
        return False
    await tree.sync(guild=guild)
    state[key] = digest
    _write_state(state_path, state)
    log.info("commands synced", extra={"action": "commands_synced", "target": key})
    return True
