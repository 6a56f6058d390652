"""Every error the queue raises, under one root.

    ImagineError
    ├── SettingsError          a setting is missing or invalid (names the IMAGINE_* variable)
    ├── UsageError             a command's argument cannot be used
    ├── DatabaseUnavailable    the database cannot be reached or used (names the setting to fix)
    ├── SchemaOutOfDate        the database is behind the code (run `imagine migrate`)
    ├── JobNotFound            no job with that id
    ├── LeaseLost              a worker reported on a job it no longer holds
    ├── NotAllowed             a user tried to act on someone else's job
    ├── OutputNotWritable      a command's output file cannot be written
    ├── JobFailed              the job a command waited for failed or was cancelled
    └── Refused                enqueue said no; `.reason` is shown to the user as is
        ├── EmptyPrompt, PromptTooLong, NulCharacter, ControlCharacters, NoWords
        ├── BadOption (UnknownOption, ImagesOutOfRange, NegativeSeed, ...)
        ├── ChannelNotAllowed, Banned, BlockedWord
        ├── TooManyRunning, TooManyQueued
        ├── QuotaExceeded      (carries `.resets_at`)
        ├── BadRequester       an empty user id, or an id or name longer than the table holds
        └── BadParent          a reroll/variation/pick names a job that cannot be used

Docstrings say what happened and how to fix it; the `.reason` of a `Refused` is the
sentence the Discord and Slack frontends post, so both refuse the same thing in the same words.

Every error carries the exit status a command ends with when it stops on it (`exit_status`), the same
for `imagine` and `python -m generator.serve`:

    0   done                               7   the output file cannot be written (bot/cli)
    1   refused (the reason is printed)    8   the model cannot be loaded (generator)
    2   bad settings or arguments          9   the job failed or was cancelled (its reason is printed)
    3   the database cannot be used        10  a generator task died (its traceback is in the log)
    4   the schema is behind: migrate      70  a bug (the traceback is in the log)
    5   no such job                        130 interrupted (nothing is lost: the job stays queued)
    6   not allowed (someone else's job)   141 the reader of the output went away (`| head`)
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from jobs.hints import command_hint

# Beyond the errors' own statuses: how a command ends without one of them.
EXIT_OK = 0
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: nothing is lost
EXIT_BROKEN_PIPE = 141  # as a shell reports a process ended by SIGPIPE


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line (a driver's message may span several), at most `limit` long."""
    return " ".join(str(exc).split())[:limit]


def internal_error(exc: BaseException, *, traceback_at: str) -> str:
    """The line a command ends with on a bug (exit `EXIT_INTERNAL`); `traceback_at` says where to look."""
    return f"internal error: {type(exc).__name__}: {one_line(exc)} ({traceback_at}; please report it)"


class ImagineError(Exception):
    """Something in the /imagine bot went wrong; the message says what and how to fix it."""

    exit_status: ClassVar[int] = 2

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or type(self).__name__).strip())


class SettingsError(ImagineError):
    """A setting is missing or invalid: fix the named IMAGINE_* environment variable or `.env` line."""

    exit_status = 2


class UsageError(ImagineError):
    """A command's argument cannot be used: the message names it and what it may be."""

    exit_status = 2


class DatabaseUnavailable(ImagineError):
    """The database cannot be reached or used: the message says why and which setting to fix.

    `kind` names the fault for programs (refused, unknown_host, login, read_only, disk_full, …)."""

    exit_status = 3

    def __init__(self, message: str, *, kind: str) -> None:
        self.kind = kind
        super().__init__(message)


class SchemaOutOfDate(ImagineError):
    """The database schema is older than the code: run `imagine migrate`."""

    exit_status = 4

    def __init__(self, current: str | None, needed: str) -> None:
        self.current = current
        self.needed = needed
        super().__init__(
            f"database schema is at {current or 'nothing (empty database)'}, code needs {needed}: "
            f"run `{command_hint('imagine')} migrate`"
        )


class JobNotFound(ImagineError):
    """There is no job with that id; check the id (`imagine status ID`)."""

    exit_status = 5

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} does not exist")


class LeaseLost(ImagineError):
    """The worker no longer holds this job (its lease expired and it was re-queued or finished elsewhere).

    The worker should drop the job: its result is not stored, the job's current holder will store one.
    """

    def __init__(self, job_id: int, worker_id: str) -> None:
        self.job_id = job_id
        self.worker_id = worker_id
        super().__init__(f"worker {worker_id!r} no longer holds job {job_id}: its lease expired")


class NotAllowed(ImagineError):
    """Only the person who asked for a job, or an admin, may do that."""

    exit_status = 6


class OutputNotWritable(ImagineError):
    """The output file cannot be written: the message names it and, if it was drawn already, where the
    picture can still be fetched."""

    exit_status = 7


class JobFailed(ImagineError):
    """The job ended without pictures: failed (the reason is the queue's, for users) or cancelled."""

    exit_status = 9


class Refused(ImagineError):
    """The request was refused; `.reason` says why in words the user sees as is."""

    exit_status = 1

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class EmptyPrompt(Refused):
    """The prompt is empty or only whitespace: describe the picture you want."""


class PromptTooLong(Refused):
    """The prompt is longer than the limit (IMAGINE_MAX_PROMPT_LENGTH): shorten it."""


class BadCharacters(Refused):
    """The prompt contains characters that cannot be drawn from: remove them."""


class NulCharacter(BadCharacters):
    """The prompt contains a NUL byte: remove it."""


class ControlCharacters(BadCharacters):
    """The prompt contains control characters: remove them."""


class NoWords(Refused):
    """The prompt has no letters or digits (for example emoji only): describe the picture in words."""


class BadOption(Refused):
    """An option is invalid: see the option's allowed range."""


class UnknownOption(BadOption):
    """An option name is not one of images, seed, guidance_scale, top_k, top_p, temperature, model."""


class ImagesOutOfRange(BadOption):
    """`images` must be a whole number from 1 to 9."""


class NegativeSeed(BadOption):
    """`seed` must be a whole number, 0 or more."""


class ChannelNotAllowed(Refused):
    """The server's admins have not allowed /imagine in this channel: use one of the allowed channels."""


class Banned(Refused):
    """The user is banned from /imagine here: ask an admin."""


class BlockedWord(Refused):
    """The prompt contains a word on this server's blocklist: rephrase it."""


class TooManyRunning(Refused):
    """The user already has the most jobs rendering at once that is allowed: wait for one to finish."""


class TooManyQueued(Refused):
    """The user already has the most jobs waiting that is allowed: wait or cancel one."""


class QuotaExceeded(Refused):
    """The user's daily image quota is used up: it resets at midnight UTC."""

    def __init__(self, reason: str, resets_at: datetime) -> None:
        self.resets_at = resets_at
        super().__init__(reason)


class BadRequester(Refused):
    """Who asks, or where, cannot be recorded: an empty user id, or an id or name longer than the table
    holds."""


class BadParent(Refused):
    """A reroll, variation or pick names a job that is missing, unfinished, or has no such image."""
