"""Structured logs: one line per event, job and worker ids as fields, no secrets, both formats."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from jobs.errors import SchemaOutOfDate
from jobs.logs import MASK, Redactor, configure_from_settings, configure_logging
from jobs.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OlNlY3JldFRva2VuVGhhdE11c3ROb3RMZWFr" * 2
BOT_TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0.GhIjKl.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789ab"
SLACK_TOKENS = (
    "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp",
    "xoxp-11-22-33-abcdef0123456789",
    "xapp-1-A0123456789-1234567890123-0a1b2c3d4e5f6a7b8c9d",
)
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DB_PASSWORD = "pg-Pa55word-long"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _capture(**kwargs: object) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(stream=stream, **kwargs)  # type: ignore[arg-type]
    return stream


@pytest.mark.usefixtures("restore_root")
def test_text_lines_carry_action_job_and_worker_first() -> None:
    stream = _capture(level="INFO", worker_id="gpu1:42")
    log = logging.getLogger("generator.scheduler")
    log.info("rendered in %.2f GPU-s", 1.2, extra={"action": "job_rendered", "job_id": 7, "images": 4})
    log.debug("not shown")
    (line,) = stream.getvalue().splitlines()
    assert line.endswith(
        "INFO generator.scheduler: rendered in 1.20 GPU-s "
        "action=job_rendered job_id=7 worker_id=gpu1:42 images=4"
    )
    assert line[:4].isdigit() and "Z INFO" in line


@pytest.mark.usefixtures("restore_root")
def test_a_traceback_and_a_multiline_message_stay_on_one_line() -> None:
    stream = _capture(level="INFO")
    log = logging.getLogger("generator.delivery")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        log.exception("poster failed\nwith detail", extra={"action": "delivery_error", "job_id": 3})
    (line,) = stream.getvalue().splitlines()
    assert 'poster failed\\nwith detail action=delivery_error job_id=3 exc="Traceback' in line
    assert "RuntimeError: boom\\nsecond line" in line


@pytest.mark.usefixtures("restore_root")
def test_json_format_one_object_per_line() -> None:
    stream = _capture(level="INFO", format="json", worker_id="w1")
    log = logging.getLogger("generator.worker")
    log.info("generator started", extra={"action": "worker_started", "tasks": ["deliver", "render"]})
    log.warning("lease lost", extra={"action": "job_lost", "job_id": 9, "worker_id": "other"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "generator started" and first["level"] == "INFO"
    assert first["worker_id"] == "w1" and first["action"] == "worker_started"
    assert first["tasks"] == "['deliver', 'render']" and first["logger"] == "generator.worker"
    assert second["job_id"] == 9 and second["worker_id"] == "other"  # a record's own id wins


@pytest.mark.parametrize("form", ["text", "json"])
@pytest.mark.usefixtures("restore_root")
def test_secret_shapes_and_configured_secrets_are_masked(form: str) -> None:
    stream = _capture(level="DEBUG", format=form, secrets=[SIGNING_SECRET, DB_PASSWORD])
    log = logging.getLogger("bot.anything")
    url = f"https://discord.com/api/v10/webhooks/1234567890/{INTERACTION_TOKEN}/messages/@original"
    log.info("PATCH %s", url, extra={"action": "edit", "job_id": 1, "token": INTERACTION_TOKEN})
    log.info("headers Authorization: Bot %s", BOT_TOKEN)
    log.info("bearer: Authorization: Bearer %s", SIGNING_SECRET + "abc")
    for token in SLACK_TOKENS:
        log.info("slack client", extra={"action": "slack", "token": token})
    log.info("respond to https://hooks.slack.com/commands/T0123/4567/AbCdEfGhIjKlMnOpQrSt")
    log.info("signature with %s", SIGNING_SECRET)
    log.info("db postgresql+asyncpg://imagine:%s@db/imagine", DB_PASSWORD)
    log.info("db postgresql+asyncpg://imagine:unlisted-pass@db/imagine")
    try:
        raise ValueError(f"bad token {INTERACTION_TOKEN}")
    except ValueError:
        log.exception("failed", extra={"job_id": 2})
    text = stream.getvalue()
    for secret in (
        INTERACTION_TOKEN,
        BOT_TOKEN,
        *SLACK_TOKENS,
        SIGNING_SECRET,
        DB_PASSWORD,
        "unlisted-pass",
        "AbCdEfGhIjKlMnOpQrSt",
        INTERACTION_TOKEN[16:40],
    ):
        assert secret not in text, secret
    assert text.count("[redacted]") >= 11
    assert "hooks.slack.com/commands/T0123/" in text and "/webhooks/1234567890/" in text
    assert len(text.splitlines()) == 11  # one line per event


def test_redactor_keeps_ordinary_text() -> None:
    redact = Redactor(["short", SIGNING_SECRET])
    ordinary = (
        "Bot connected as imagine#0001; job 12 rendered by gpu-1:42 in 3.5 s; "
        "model dalle-mini/dalle-mini; sha 0123456789abcdef0123456789abcdef01234567"
    )
    assert redact(ordinary) == ordinary
    assert redact(f"x {SIGNING_SECRET} y") == f"x {SIGNING_SECRET[:6]}{MASK} y"


@pytest.mark.usefixtures("restore_root")
def test_configured_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        log_level="WARNING",
        log_format="json",
        slack_signing_secret=SecretStr(SIGNING_SECRET),
        database_url=SecretStr(f"postgresql+asyncpg://imagine:{DB_PASSWORD}@db/imagine"),
    )
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_from_settings(settings, worker_id="w")
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("sig %s pw %s", SIGNING_SECRET, DB_PASSWORD)
    (line,) = stream.getvalue().splitlines()
    event = json.loads(line)
    assert SIGNING_SECRET not in line and DB_PASSWORD not in line and event["worker_id"] == "w"
    assert logging.getLogger("sqlalchemy").level == logging.WARNING


def test_generator_main_reports_an_empty_database_in_one_line(tmp_path: Path) -> None:
    """`python -m generator.serve` configures logging in main() and says in one line why it cannot start
    (the SQLite file is made where the URL says, empty: it needs migrating)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "IMAGINE_LOG_FORMAT": "json",
        "IMAGINE_DATA_DIR": str(tmp_path),
        "IMAGINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db",
    }
    done = subprocess.run(
        [sys.executable, "-m", "generator.serve", "--worker-id", "t1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == SchemaOutOfDate.exit_status, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("imagine generator: database schema is at nothing") and "migrate" in line


@pytest.mark.usefixtures("restore_root")
def test_configuring_again_replaces_only_our_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    foreign = logging.NullHandler()
    logging.getLogger().addHandler(foreign)
    configure_logging(level="INFO")
    configure_logging(level="INFO", format="json")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_imagine_handler", False)]
    assert len(ours) == 1 and foreign in logging.getLogger().handlers
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)  # written to the stderr of the moment, never a stale one
    logging.getLogger("x").info("now", extra={"action": "a"})
    assert json.loads(stream.getvalue())["action"] == "a"
