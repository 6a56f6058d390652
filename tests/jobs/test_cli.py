"""The `imagine` CLI as a subprocess: migrate, enqueue, status, cancel, usage; clear one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imagine(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMAGINE_")}
    environment = {**clean, "IMAGINE_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from bot.cli import main; sys.exit(main())", *args],
        cwd=tmp_path,
        env={**environment, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_migrate_enqueue_status_cancel_usage(tmp_path: Path) -> None:
    before = imagine(tmp_path, "enqueue", "a cat")
    assert before.returncode == 2 and "run `imagine migrate`" in before.stderr
    assert "Traceback" not in before.stderr
    assert imagine(tmp_path, "migrate").returncode == 0
    assert (tmp_path / "data" / "imagine.db").exists()
    assert imagine(tmp_path, "migrate").returncode == 0  # idempotent
    queued = imagine(tmp_path, "enqueue", "a cat in a hat", "--images", "2", "--seed", "7", "--user", "ann")
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.startswith("job 1 queued: position 1, ETA unknown") and "seed 7" in queued.stdout
    status = imagine(tmp_path, "status", "1")
    assert "job 1: queued" in status.stdout and "'a cat in a hat' by ann on cli" in status.stdout
    refused = imagine(tmp_path, "enqueue", "🐱", "--user", "ann")
    assert refused.returncode == 1 and refused.stderr.startswith(
        "imagine: refused: your prompt has no letters"
    )
    assert imagine(tmp_path, "cancel", "1", "--user", "bob").returncode == 2
    assert "cancelled" in imagine(tmp_path, "cancel", "1", "--user", "ann").stdout
    table = imagine(tmp_path, "usage", "--by", "user").stdout
    assert "ann" in table and "jobs" in table
    missing = imagine(tmp_path, "status", "99")
    assert missing.returncode == 2 and missing.stderr == "imagine: job 99 does not exist\n"


@pytest.mark.parametrize("value", ["many", "-3"])
def test_bad_setting_is_one_line_naming_the_variable(tmp_path: Path, value: str) -> None:
    result = imagine(tmp_path, "migrate", IMAGINE_MAX_ATTEMPTS=value, IMAGINE_SLACK_BOT_TOKEN="xoxb-secret")
    assert result.returncode == 2
    assert result.stderr.startswith("imagine: invalid settings: IMAGINE_MAX_ATTEMPTS:")
    assert result.stderr.count("\n") == 1 and "xoxb-secret" not in result.stderr
