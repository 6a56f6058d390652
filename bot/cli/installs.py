"""The install links an operator hands out.

imagine discord-invite    the "Add to Discord" URL (bot/discord/install.py)
"""

from __future__ import annotations

import argparse

from bot.cli.registry import command
from jobs.settings import Settings


@command("discord-invite", "print the URL that adds the bot to a Discord server")
async def run_discord_invite(args: argparse.Namespace, settings: Settings) -> int:
    from bot.discord import install  # discord.py only for this command, not for every `imagine`

    print(install.install_url(await install.application_id(settings)))
    return 0
