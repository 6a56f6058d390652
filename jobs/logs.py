"""Logging for every process (bot, generator, CLI), configured once in `main()` by `configure_logging`.

Logs are data: one line per event, on stderr.

    text  2026-11-25T18:00:00Z INFO generator.scheduler: rendered in 1.20 GPU-s action=job_rendered job_id=7
          worker_id=gpu1:42 gpu_seconds=1.2 images=4            (one line; wrapped here)
    json  {"time": "…", "level": "INFO", "logger": "generator.scheduler", "message": "rendered in 1.20 GPU-s",
           "action": "job_rendered", "job_id": 7, "worker_id": "gpu1:42", …}      (one line; wrapped here)

Every `extra={…}` key is a field: `action` first, then `job_id` and `worker_id`, then the rest sorted. A
process that renders passes its `worker_id`, which every record gets unless it names its own. Tracebacks
stay on the event's line (`exc="Traceback…\\n…"` in text, an `exc` field in JSON).

No secrets: a filter on the handler masks, in the message, every field and the traceback, the configured
secrets (tokens, signing secret, dashboard password, database password) and anything shaped like one —
Discord interaction tokens and webhook tokens, Discord bot tokens, Slack `xox?-` and `xapp-` tokens, Slack
`response_url`s, `Bearer` authorization values and passwords in URLs — keeping a short prefix so
lines can still be matched up.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["text", "json"]

# Loggers of libraries that chatter at INFO/DEBUG; held at WARNING unless IMAGINE_LOG_LEVEL=DEBUG asks.
NOISY_LOGGERS = (
    "sqlalchemy",
    "aiosqlite",
    "asyncio",
    "urllib3",
    "httpx",
    "httpcore",
    "filelock",
    "huggingface_hub",
    "alembic",
    "aiohttp.access",
    "discord.gateway",
    "discord.http",
    "slack_bolt",
    "slack_sdk",
)
FIRST_FIELDS = ("action", "job_id", "worker_id")
KEEP = 6  # characters of a masked token kept, so two lines about the same token still match
MASK = "…[redacted]"
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

# Shapes of secrets, whatever their value. Group "keep" stays, group "secret" is masked.
SECRET_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Discord interaction token: base64 of "interaction:<id>:<token>"
    re.compile(r"(?P<secret>aW50ZXJhY3Rpb246[A-Za-z0-9_\-+/=]{8,})"),
    # Discord webhook/interaction URLs: /webhooks/<application id>/<token>
    re.compile(r"(?P<keep>/webhooks/\d+/)(?P<secret>[A-Za-z0-9_\-.]{16,})"),
    # Discord bot token: <base64 user id>.<timestamp>.<hmac>
    re.compile(
        r"(?<![A-Za-z0-9_\-])(?P<secret>[A-Za-z0-9_\-]{23,30}\.[A-Za-z0-9_\-]{6,7}\.[A-Za-z0-9_\-]{27,})"
    ),
    # Slack tokens: bot/user/app-level/refresh/config
    re.compile(r"(?P<secret>xox[abposer]-[A-Za-z0-9\-]{6,})"),
    re.compile(r"(?P<secret>xapp-[A-Za-z0-9\-]{6,})"),
    # Slack response_url: https://hooks.slack.com/commands|actions/T…/…/<token>
    re.compile(r"(?P<keep>hooks\.slack\.com/(?:[a-z]+/)?(?:[A-Z0-9]+/)?)(?P<secret>[A-Za-z0-9_/\-]{8,})"),
    # Authorization headers
    re.compile(r"(?P<keep>\b(?:Bearer\s+|Authorization:\s*Bot\s+))(?P<secret>[A-Za-z0-9_\-.=+/]{8,})"),
    # user:password@host in URLs
    re.compile(r"(?P<keep>://[^:/@\s]+:)(?P<secret>[^@\s]+)(?=@)"),
)


class Redactor:
    """Masks known secret values and secret-shaped text in a string."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole; short values would mask words.
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, secret[:KEEP] + MASK if len(secret) > 3 * KEEP else MASK)
        for pattern in SECRET_PATTERNS:
            text = pattern.sub(_mask, text)
        return text


def _mask(match: re.Match[str]) -> str:
    keep = match.groupdict().get("keep") or ""
    secret = match.group("secret")
    return keep + (secret[:KEEP] + MASK if len(secret) > 3 * KEEP else MASK)


def _redact_value(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, list | tuple):  # keep the shape: other handlers (and tests) read the field as data
        return type(value)(_redact_value(item, redact) for item in value)
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """On the root handler: the message, every extra field, the traceback and stack, masked."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        for key, value in fields_of(record).items():
            setattr(record, key, _redact_value(value, self.redact))
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class WorkerIdFilter(logging.Filter):
    """Adds this process's `worker_id` to records that do not carry one."""

    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self.worker_id = worker_id

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "worker_id", None) is None:
            record.worker_id = self.worker_id
        return True


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The record's `extra` fields, `action`, `job_id`, `worker_id` first, then sorted."""
    extra = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES}
    first = {k: extra.pop(k) for k in FIRST_FIELDS if k in extra}
    return first | dict(sorted(extra.items()))


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _exception(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    parts = [part for part in (record.exc_text, record.stack_info) if part]
    return "\n".join(parts)


_BARE = re.compile(r"^[A-Za-z0-9_.:/@+\-\[\]',()]+$")


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and _BARE.match(text):
        return text
    return json.dumps(text, ensure_ascii=False)  # quoted, newlines escaped: still one line


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value …` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().replace("\r", "\\r").replace("\n", "\\n")
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {message}"
        pairs = [f"{key}={_text_value(value)}" for key, value in fields_of(record).items()]
        exception = _exception(record, self)
        if exception:
            pairs.append(f"exc={_text_value(exception)}")
        return " ".join([line, *pairs])


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the fields, `exc` if any."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            plain = isinstance(value, bool | int | float | str) or value is None
            event.setdefault(key, value if plain else str(value))
        exception = _exception(record, self)
        if exception:
            event["exc"] = exception
        return json.dumps(event, ensure_ascii=False, default=str)


FORMATTERS: dict[str, type[logging.Formatter]] = {"text": TextFormatter, "json": JsonFormatter}
_OURS = "_imagine_handler"


class _StderrHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler on the current `sys.stderr` (as `logging.lastResort`), never a stale one."""

    def __init__(self) -> None:
        super().__init__()

    @property  # logging.StreamHandler.stream is a plain attribute: this reads sys.stderr each time
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def secret_values(settings: Any) -> list[str]:
    """The values of every secret setting (SecretStr), the database URL's password included."""
    from jobs.settings import SECRET_FIELDS

    values = []
    for name in SECRET_FIELDS:
        secret = getattr(settings, name, None)
        if secret is not None and secret.get_secret_value():
            values.append(secret.get_secret_value())
    url = settings.database_url.get_secret_value() if getattr(settings, "database_url", None) else ""
    match = re.search(r"://[^:/@]+:([^@]+)@", url)
    if match:
        values.append(match.group(1))
    return values


def configure_logging(
    *,
    level: str | int = "INFO",
    format: LogFormat = "text",
    worker_id: str | None = None,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Install this process's one handler on the root logger (formatter, redaction, worker id), replacing
    the one a previous call installed; other handlers (a test runner's) stay. Without `stream` it writes to
    whatever `sys.stderr` is at the time of each record."""
    handler: logging.StreamHandler[TextIO] = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    handler.setFormatter(FORMATTERS[format]())
    if worker_id is not None:
        handler.addFilter(WorkerIdFilter(worker_id))
    handler.addFilter(RedactingFilter(Redactor(secrets)))
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in root.handlers[:]:
        if getattr(old, _OURS, False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler


def configure_from_settings(
    settings: Any, *, level: str | int | None = None, worker_id: str | None = None
) -> logging.Handler:
    """`configure_logging` from IMAGINE_LOG_LEVEL / IMAGINE_LOG_FORMAT and the secret settings."""
    return configure_logging(
        level=settings.log_level if level is None else level,
        format=getattr(settings, "log_format", "text"),
        worker_id=worker_id,
        secrets=secret_values(settings),
    )
