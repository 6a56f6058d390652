"""What a database fault means: worth retrying or not, and the one line a person reads about it.

    is_transient(exc)     a dropped or refused connection, a server restarting, a busy SQLite file: the
                          same statement may pass in a moment (loops ride it out)
    is_permanent(exc)     read-only, disk full, the schema gone, no permission, a bad login: it will not
                          pass by waiting (a generator gives up after a bounded retry and exits)
    database_fault(exc)   `DatabaseUnavailable` with a sentence naming the setting to fix, or None when
                          `exc` is not a database fault at all (a bug keeps its traceback)

The URL in a message never carries its password. The drivers' own exceptions are read here, in one place:
asyncpg's SQLSTATE classes, sqlite3's messages, and the OS errors of a connect or a data directory.
"""

from __future__ import annotations

import socket
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError

from jobs.errors import DatabaseUnavailable
from jobs.hints import command_hint

URL_SETTING = "IMAGINE_DATABASE_URL"
DATA_DIR_SETTING = "IMAGINE_DATA_DIR"

# asyncpg exception class names (SQLSTATE classes) that waiting cannot fix
_PERMANENT_PG = {
    "InvalidCatalogNameError": "missing_database",  # 3D000
    "InvalidPasswordError": "login",  # 28P01
    "InvalidAuthorizationSpecificationError": "login",  # 28000
    "InsufficientPrivilegeError": "permission",  # 42501
    "ReadOnlySQLTransactionError": "read_only",  # 25006
    "DiskFullError": "disk_full",  # 53100
    "UndefinedTableError": "schema_gone",  # 42P01
}
# sqlite3 messages that waiting cannot fix
_PERMANENT_SQLITE = {
    "attempt to write a readonly database": "read_only",
    "file is not a database": "not_a_database",
    "database or disk is full": "disk_full",
    "no such table": "schema_gone",
    "unable to open database file": "cannot_open",
    "disk i/o error": "io_error",
}


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what caused it (SQLAlchemy wraps the driver's, which may wrap an OS error)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__ or current.__context__
    return seen


def _kind(exc: BaseException) -> str | None:
    """A name for the fault in `exc`'s chain, or None when none is recognized."""
    for cause in _chain(exc):
        name = type(cause).__name__
        if name in _PERMANENT_PG:
            return _PERMANENT_PG[name]
        text = str(cause).lower()
        for message, kind in _PERMANENT_SQLITE.items():
            if message in text:
                return kind
        if isinstance(cause, socket.gaierror):
            return "unknown_host"
        if isinstance(cause, ConnectionRefusedError):
            return "refused"
        if isinstance(cause, NotADirectoryError | FileExistsError):
            return "data_dir"
        if isinstance(cause, PermissionError):
            return "permission"
        if isinstance(cause, OverflowError) and "port" in text:
            return "port"
        if isinstance(cause, TimeoutError):
            return "timeout"
    return None


# An unknown host can be a resolver's hiccup, a refused connection a server restarting: both transient.
PERMANENT_KINDS = frozenset({*_PERMANENT_PG.values(), *_PERMANENT_SQLITE.values(), "data_dir", "port"})


def is_permanent(exc: BaseException) -> bool:
    """A fault that waiting will not clear (see the module docstring)."""
    return _kind(exc) in PERMANENT_KINDS


def is_transient(exc: BaseException) -> bool:
    """A lost or refused connection, a server shutting down, a busy database: worth retrying."""
    if is_permanent(exc):
        return False
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, DBAPIError):
        text = str(exc.orig).lower()
        return any(word in text for word in ("connection", "shutting down", "terminat", "closed", "locked"))
    if type(exc).__module__.startswith("asyncpg") and any(
        word in type(exc).__name__ for word in ("Connection", "Shutdown", "Interface", "CannotConnect")
    ):
        return True  # raised by the raw LISTEN connection, outside SQLAlchemy
    return isinstance(exc, ConnectionError | TimeoutError | OSError)


def shown_url(url: str) -> str:
    """The database URL for a message: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable URL)"


def database_fault(exc: BaseException, url: str) -> DatabaseUnavailable | None:
    """The one line a person reads about `exc` on the database at `url`, or None if `exc` is not about the
    database (then it is a bug, and keeps its traceback)."""
    kind = _kind(exc)
    if kind is None and not is_transient(exc):
        return None
    where = shown_url(url)
    parsed = make_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    file = parsed.database or ""
    server = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    reason = _first_line(exc)
    sentence = {
        "refused": f"cannot reach the database at {where}: connection refused (is Postgres running on "
        f"{server}?); fix {URL_SETTING}",
        "unknown_host": f"cannot reach the database at {where}: unknown host {parsed.host!r}; fix the host "
        f"in {URL_SETTING}",
        "timeout": f"the database at {where} did not answer in time; check the server, or {URL_SETTING}",
        "missing_database": f"the database {parsed.database!r} does not exist on {server}: create it "
        f"(createdb {parsed.database}) or fix {URL_SETTING}",
        "login": f"the database at {where} refused the login of {parsed.username!r} (wrong user or "
        f"password): fix {URL_SETTING}",
        "port": f"the port in {URL_SETTING} must be from 1 to 65535 ({where})",
        "permission": f"no permission to use the database at {where}: grant it, or fix {URL_SETTING}"
        if not is_sqlite
        else f"no permission to open {file}: fix its permissions, or set {DATA_DIR_SETTING} to a "
        "directory of yours",
        "read_only": f"the database {file or where} is read-only: make it writable, or set "
        f"{DATA_DIR_SETTING} ({URL_SETTING}) to a writable place",
        "disk_full": f"the database's disk is full ({file or where}): free space, then start again",
        "schema_gone": f"the database at {where} has no /imagine tables (was it emptied?): run "
        f"`{command_hint('imagine')} migrate`",
        "not_a_database": f"{file} is not a SQLite database: move it away, or point {URL_SETTING} or "
        f"{DATA_DIR_SETTING} at another file",
        "cannot_open": f"cannot open the SQLite file {file}: check {DATA_DIR_SETTING} (does its directory "
        "exist and can it be written?)",
        "io_error": f"the disk under {file or where} failed to read or write: check it, or move "
        f"{DATA_DIR_SETTING}",
        "data_dir": f"{DATA_DIR_SETTING} runs through a regular file ({_blocking_file(file)}): choose a "
        "directory",
    }.get(kind or "", f"cannot reach the database at {where}: {reason}; check {URL_SETTING}")
    return DatabaseUnavailable(sentence, kind=kind or "unreachable")


def _blocking_file(path: str) -> str:
    """The first part of `path` that is a regular file (what stops its directory from being made)."""
    probe = Path(path)
    for parent in reversed(probe.parents):
        if parent.is_file():
            return str(parent)
    return str(probe.parent)


def _first_line(exc: BaseException) -> str:
    for cause in reversed(_chain(exc)):
        text = " ".join(str(cause).split())
        if text:
            return text[:200]
    return type(exc).__name__
