"""The `imagine` CLI: migrate, enqueue, status, cancel, usage; clear one-line errors. In-process through
`main(argv)` (same code as the console script), plus one run of the real installed `imagine` script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no developer .env is read
    monkeypatch.setenv("IMAGINE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_migrate_enqueue_status_cancel_usage(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "enqueue", "a cat")
    assert code == 4 and "imagine migrate`" in err and "Traceback" not in err  # the schema is behind
    assert run(capsys, "migrate")[0] == 0 and (data_dir / "imagine.db").exists()
    assert run(capsys, "migrate")[0] == 0  # idempotent
    code, out, err = run(capsys, "enqueue", "a cat in a hat", "--images", "2", "--seed", "7", "--user", "ann")
    assert code == 0, err
    assert out.startswith("job 1 queued: position 1, ETA unknown") and "seed 7" in out
    _, out, _ = run(capsys, "status", "1")
    assert "job 1: queued" in out and "'a cat in a hat' by ann on cli" in out
    code, _, err = run(capsys, "enqueue", "🐱", "--user", "ann")
    assert code == 1 and err.startswith("imagine: refused: your prompt has no letters")
    code, _, err = run(capsys, "enqueue", "a cat", "--images", "10", "--user", "ann")
    assert code == 1 and "images must be from 1 to 9, got 10" in err
    assert run(capsys, "cancel", "1", "--user", "bob")[0] == 6  # not allowed: someone else's job
    assert "cancelled" in run(capsys, "cancel", "1", "--user", "ann")[1]
    _, table, _ = run(capsys, "usage", "--by", "user")
    assert "ann" in table and "jobs" in table
    assert run(capsys, "status", "99") == (5, "", "imagine: job 99 does not exist\n")


@pytest.mark.parametrize("value", ["many", "-3"])
def test_bad_setting_is_one_line_naming_the_variable(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("IMAGINE_MAX_ATTEMPTS", value)
    monkeypatch.setenv("IMAGINE_SLACK_BOT_TOKEN", "xoxb-secret")
    code, _, err = run(capsys, "migrate")
    assert code == 2 and err.startswith("imagine: invalid settings: IMAGINE_MAX_ATTEMPTS:")
    assert err.count("\n") == 1 and "xoxb-secret" not in err


def test_installed_script(tmp_path: Path) -> None:
    script = shutil.which("imagine", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the package is not installed in this environment (pip install -e .)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGINE_")}
    env["IMAGINE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    done = subprocess.run(
        [script, "migrate"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, "database is at the latest schema\n"), done.stderr
