"""The `imagine` command: the product from a terminal, and the operator's tool. No torch import.

    imagine "a prompt" [--images N] …   draw one grid (`render`, the default command)   bot/cli/draw.py
    imagine serve [--no-render]         the generator child + every configured frontend   bot/cli/serve.py
    imagine migrate | enqueue | status | cancel | fetch | usage | retention | dashboard    bot/cli/admin.py
    imagine discord-invite              the "Add to Discord" link                         bot/cli/installs.py

Every subcommand is one entry of `bot.cli.registry.COMMANDS` with one signature,
`async def run(args, settings) -> int`. Settings come from IMAGINE_* variables and `.env` (see
.env.example), read once here in `main`.

Whatever goes wrong ends in one line on stderr and the exit status of its kind (the table in
`jobs/errors.py`): a refusal, a bad argument or setting, a database that cannot be used (the line names
the setting to fix, never a password), a schema behind the code, a job that does not exist, an output
that cannot be written. A closed pipe (`imagine usage | head -1`) ends quietly. A bug prints one line too;
its traceback goes to the log only with IMAGINE_LOG_LEVEL=DEBUG.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from bot.cli import admin, draw, installs, serve  # noqa: F401  (importing a command module registers its commands)
from bot.cli.registry import COMMANDS
from jobs.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    ImagineError,
    Refused,
    UsageError,
    internal_error,
)
from jobs.faults import database_fault
from jobs.logs import configure_from_settings
from jobs.settings import Settings, load_settings

log = logging.getLogger("imagine")

DEFAULT_COMMAND = "render"


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (`imagine status: argument job_id: …`), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(UsageError.exit_status, f"{self.prog}: {message} (see {self.prog} --help)\n")


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="imagine", description="Self-hosted /imagine: DALL·E mini for chats.")
    parser.add_argument(
        "--database-url", help="overrides IMAGINE_DATABASE_URL (default: sqlite in IMAGINE_DATA_DIR)"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name, entry in COMMANDS.items():
        entry.arguments(subparsers.add_parser(name, help=entry.help, description=entry.help))
    return parser


def prompt_is_default(argv: list[str]) -> list[str]:
    """`imagine "a prompt" …` means `imagine render "a prompt" …`."""
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        return [DEFAULT_COMMAND, *argv]
    return argv


def check_text(argv: Sequence[str]) -> None:
    """Refuse arguments that are not valid UTF-8 (Python hands them over with surrogate escapes)."""
    for position, argument in enumerate(argv, start=1):
        if any(0xD800 <= ord(character) <= 0xDFFF for character in argument):
            raise UsageError(f"argument {position} ({argument!a}) is not valid UTF-8 text: pass it in UTF-8")


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    settings: Settings | None = None
    try:
        check_text(raw)
        try:
            args = make_parser().parse_args(prompt_is_default(raw))
        except SystemExit as exc:  # argparse has printed --help or the one line of a bad argument
            return exc.code if isinstance(exc.code, int) else UsageError.exit_status
        entry = COMMANDS[args.command]
        overrides = {"database_url": args.database_url} if args.database_url else {}
        settings = load_settings(**overrides)
        level = logging.getLevelName(settings.log_level)
        if not entry.is_long_running and settings.log_level != "DEBUG":
            level = max(level, logging.WARNING)  # one-shot commands: their output is the answer
        configure_from_settings(settings, level=level)  # jobs/logs.py: text or JSON, secrets masked
        return asyncio.run(entry.run(args, settings))
    except Refused as exc:
        return _fail(f"refused: {exc.reason}", exc.exit_status)
    except ImagineError as exc:
        return _fail(str(exc), exc.exit_status)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head -1`): say nothing more, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:
        fault = database_fault(exc, settings.db_url) if settings is not None else None
        if fault is not None:
            log.debug("database fault", exc_info=exc)
            return _fail(str(fault), fault.exit_status)
        log.debug("internal error", exc_info=exc)
        return _fail(
            internal_error(exc, traceback_at="IMAGINE_LOG_LEVEL=DEBUG shows the traceback"), EXIT_INTERNAL
        )


def _fail(message: str, status: int) -> int:
    print(f"imagine: {message}", file=sys.stderr)
    return status
