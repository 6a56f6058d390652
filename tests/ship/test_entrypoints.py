"""The commands the image and compose run, started for real in the project environment (subprocesses)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from jobs.healthcheck import check

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIMEOUT = 60


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGINE_")}
    return {**env, "IMAGINE_DATA_DIR": str(tmp_path), **settings}


def _argv(command: list[str]) -> list[str]:
    """A Dockerfile/compose command as run from this environment (the image puts .venv/bin first in PATH)."""
    if command[0] == "python":
        return [sys.executable, *command[1:]]
    assert (BIN / command[0]).exists(), f"{command[0]} is not installed in the project environment"
    return [str(BIN / command[0]), *command[1:]]


def _image_commands() -> list[list[str]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = [service["command"] for service in compose["services"].values() if "command" in service]
    return [*commands, ["imagine", "serve"], ["python", "-m", "jobs.healthcheck"]]  # CMD, HEALTHCHECK


@pytest.mark.parametrize("command", _image_commands(), ids=" ".join)
def test_command_starts_with_help(command: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [*_argv(command), "--help"],
        env=_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    for option in command[1:]:
        if option.startswith("--"):
            assert option in done.stdout  # e.g. serve --no-render is a real option


@pytest.mark.parametrize("command", [["python", "-m", "generator.serve"], ["imagine"]], ids=" ".join)
def test_help_describes_the_command_in_whole_sentences(command: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [*_argv(command), "--help"], env=_env(tmp_path), capture_output=True, text=True, timeout=TIMEOUT
    )
    description = done.stdout.split("\n\n")[1]  # after the usage block
    assert description.rstrip().endswith("."), description  # not cut off mid-sentence


def test_imagine_help_lists_the_readme_commands(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BIN / "imagine"), "--help"], env=_env(tmp_path), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    for name in ("migrate", "serve", "render", "enqueue", "status", "usage"):
        assert name in done.stdout


def test_healthcheck_exit_status(tmp_path: Path) -> None:
    nothing = subprocess.run([sys.executable, "-m", "jobs.healthcheck"], env=_env(tmp_path), timeout=TIMEOUT)
    assert nothing.returncode == 0  # serves nothing: healthy while it runs
    down = subprocess.run(
        [sys.executable, "-m", "jobs.healthcheck", "--timeout", "2"],
        env=_env(tmp_path, IMAGINE_GENERATOR_METRICS_PORT=str(_free_port())),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert down.returncode == 1 and down.stderr.startswith("unhealthy: http://127.0.0.1:")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_bot_service_command_serves_until_sigterm(tmp_path: Path) -> None:
    """Compose's bot: `imagine serve --no-render` migrates, serves the dashboard with a deliver-only generator
    child (no model), answers the container healthcheck, and stops cleanly on SIGTERM."""
    port = _free_port()
    env = _env(
        tmp_path,
        IMAGINE_DASHBOARD_ENABLED="true",
        IMAGINE_DASHBOARD_PASSWORD="pw-for-the-test",
        IMAGINE_DASHBOARD_PORT=str(port),
        IMAGINE_LOG_FORMAT="json",
    )
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log_file:
        serve = subprocess.Popen(
            _argv(["imagine", "serve", "--no-render"]),
            env=env,
            cwd=tmp_path,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while check(f"http://127.0.0.1:{port}/healthz", timeout=2) is not None:
            assert serve.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        health = subprocess.run(  # the container's HEALTHCHECK, as Docker runs it
            [sys.executable, "-m", "jobs.healthcheck", "--timeout", "2"], env=env, timeout=TIMEOUT
        )
        assert health.returncode == 0
        # the child only delivers: it never loads a model
        while '"action": "worker_started"' not in log_path.read_text():
            assert serve.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        assert "model_loaded" not in log_path.read_text() and (tmp_path / "imagine.db").exists()
    finally:
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(TIMEOUT)
    output = log_path.read_text()
    assert code == 0, output
    assert '"action": "worker_stopped"' in output
