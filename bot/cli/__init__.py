"""The `imagine` command: the product from a terminal, and the operator's tool. No torch import.

    imagine "a prompt" [--images N] …   draw one grid (`render`, the default command)   bot/cli/draw.py
    imagine serve [--no-render]         the generator child + every configured frontend   bot/cli/serve.py
    imagine migrate | enqueue | status | cancel | usage | retention | dashboard            bot/cli/admin.py

Every subcommand is one entry of `bot.cli.registry.COMMANDS` with one signature,
`async def run(args, settings) -> int`. Settings come from IMAGINE_* variables and `.env` (see
.env.example), read once here in `main`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from bot.cli import admin, draw, serve  # noqa: F401  (importing a command module registers its commands)
from bot.cli.registry import COMMANDS
from jobs.errors import ImagineError, Refused
from jobs.logs import configure_from_settings
from jobs.settings import load_settings

DEFAULT_COMMAND = "render"


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imagine", description="Self-hosted /imagine: DALL·E mini for chats."
    )
    parser.add_argument(
        "--database-url", help="overrides IMAGINE_DATABASE_URL (default: sqlite in IMAGINE_DATA_DIR)"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, entry in COMMANDS.items():
        entry.arguments(subparsers.add_parser(name, help=entry.help, description=entry.help))
    return parser


def prompt_is_default(argv: list[str]) -> list[str]:
    """`imagine "a prompt" …` means `imagine render "a prompt" …`."""
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        return [DEFAULT_COMMAND, *argv]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(prompt_is_default(list(sys.argv[1:] if argv is None else argv)))
    entry = COMMANDS[args.command]
    try:
        overrides = {"database_url": args.database_url} if args.database_url else {}
        settings = load_settings(**overrides)
        level = logging.getLevelName(settings.log_level)
        if not entry.is_long_running and settings.log_level != "DEBUG":
            level = max(level, logging.WARNING)  # one-shot commands: their output is the answer
        configure_from_settings(settings, level=level)  # jobs/logs.py: text or JSON, secrets masked
        return asyncio.run(entry.run(args, settings))
    except Refused as exc:
        print(f"imagine: refused: {exc.reason}", file=sys.stderr)
        return 1
    except ImagineError as exc:
        print(f"imagine: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
