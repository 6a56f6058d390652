"""Argument types shared by the subcommands: each refuses, in one line, what the database or Python could
not take (argparse then prints that line and exits 2)."""

from __future__ import annotations

import argparse
import getpass
import math

from jobs.models import MAX_JOB_ID
from jobs.options import MAX_IMAGES

MAX_DAYS = 36_500.0  # a century: more is not a period anyone means, and overflows a datetime


def job_id(text: str) -> int:
    """A job number: a whole number from 1 to 2⁶³ − 1 (the database's BIGINT)."""
    return _whole_number(text, "a job id", MAX_JOB_ID)


def image_number(text: str) -> int:
    """An image of a grid as its buttons number them: 1 to 9."""
    return _whole_number(text, "an image number", MAX_IMAGES)


def _whole_number(text: str, what: str, most: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} is a whole number, not {text[:40]!r}") from None
    if not 1 <= value <= most:
        raise argparse.ArgumentTypeError(f"{what} is from 1 to {most}, not {text[:40]}")
    return value


def days(text: str) -> float:
    """A period in days: more than 0, at most a century."""
    value = _number(text)
    if not 0 < value <= MAX_DAYS:
        raise argparse.ArgumentTypeError(
            f"days must be more than 0 and at most {MAX_DAYS:g}, not {text[:40]}"
        )
    return value


def retention_days(text: str) -> float:
    """A retention in days: 0 (keep forever) up to a century."""
    value = _number(text)
    if not 0 <= value <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"days must be from 0 (forever) to {MAX_DAYS:g}, not {text[:40]}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text[:40]} is not a finite number")
    return value


def terminal_user() -> str:
    """Who asks, for fairness and quotas: the login name (a container may have none)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"
