"""The one registry of `imagine` subcommands: each is `@command(name, help, arguments)` on
`async def run(args, settings) -> int`, its exit status.

    @command("status", "show a job", job_id_argument)
    async def run_status(args: argparse.Namespace, settings: Settings) -> int: ...

`bot.cli.main` builds the parser from this table and runs the chosen command with the settings it read.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from jobs.settings import Settings

Runner = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]
Arguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Arguments
    run: Runner
    is_long_running: bool  # logs at IMAGINE_LOG_LEVEL; a one-shot command logs only warnings


COMMANDS: dict[str, Command] = {}


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


def command(
    name: str, help_text: str, arguments: Arguments = _no_arguments, *, is_long_running: bool = False
) -> Callable[[Runner], Runner]:
    """Register a subcommand (see the module docstring)."""

    def register(run: Runner) -> Runner:
        if name in COMMANDS:
            raise ValueError(f"imagine {name} is registered twice")
        COMMANDS[name] = Command(name, help_text, arguments, run, is_long_running)
        return run

    return register
