"""One Ctrl-C or SIGTERM stops `imagine serve` and everything it started within `STOP_SECONDS`, whatever
state each frontend is in: Slack unreachable while Bolt retries, Discord gone while discord.py
reconnects, the dashboard serving. Real processes; the platforms are fakes on 127.0.0.1 (or nothing at
all where the point is that nothing answers). Ctrl-C is sent as a terminal does, to the whole
foreground process group."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.cli.serve import STOP_SECONDS
from tests.fakes.discord import FakeDiscord

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)
START_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    popen: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + START_SECONDS
        while text not in self.output():
            assert self.popen.poll() is None, self.output()
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()}"
            await asyncio.sleep(0.1)

    def group_is_gone(self) -> bool:
        try:
            os.killpg(self.popen.pid, 0)
        except ProcessLookupError:
            return True
        return False

    async def stop(self, signum: signal.Signals, *, from_terminal: bool) -> tuple[int, float]:
        """Send one signal (to the whole process group when `from_terminal`); the exit status and the
        seconds it took. The fakes run on this loop, so the wait must not block it."""
        sent = time.monotonic()
        if from_terminal:
            os.killpg(self.popen.pid, signum)
        else:
            self.popen.send_signal(signum)
        code = await asyncio.to_thread(self.popen.wait, 3 * STOP_SECONDS)
        return code, time.monotonic() - sent


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[object]:
    started: list[Served] = []

    async def start(**settings: str) -> Served:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGINE_")}
        env.update(
            PYTHONPATH=str(ROOT),
            IMAGINE_DATA_DIR=str(tmp_path / "data"),
            IMAGINE_LOG_LEVEL="INFO",
            HF_HUB_OFFLINE="1",
        )
        env.update({f"IMAGINE_{name.upper()}": value for name, value in settings.items()})
        log_path = tmp_path / f"serve-{len(started)}.log"
        with open(log_path, "wb") as log_file:
            popen = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve", "--no-render"],
                env=env,
                cwd=tmp_path,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, as a terminal's foreground job
            )
        served = Served(popen, log_path)
        started.append(served)
        await served.wait_for("action=worker_started")  # the generator child is up
        return served

    yield start
    for served in started:
        if not served.group_is_gone():
            os.killpg(served.popen.pid, signal.SIGKILL)
            served.popen.wait(10)


def assert_stopped_cleanly(served: Served, code: int, seconds: float, signal_name: str) -> None:
    output = served.output()
    assert code == 0, output
    assert seconds <= STOP_SECONDS, f"took {seconds:.1f} s\n{output}"
    assert output.count(f"imagine serve: {signal_name}: stopping") == 1, output
    assert "again" not in output  # one signal was enough
    assert served.group_is_gone(), "a process of the tree is still running"
    assert "action=worker_stopped" in output  # the generator child stopped on its own, not killed
    assert "Traceback" not in output.split(f"imagine serve: {signal_name}")[1], output


async def test_sigterm_while_bolt_retries_an_unreachable_slack(serve: object) -> None:
    nothing_there = f"http://127.0.0.1:{free_port()}/api/"
    served = await serve(  # type: ignore[operator]
        slack_bot_token="xoxb-test", slack_app_token="xapp-test", slack_api_url=nothing_there
    )
    await served.wait_for("Failed to connect")  # Bolt's Socket Mode client, retrying
    code, seconds = await served.stop(signal.SIGTERM, from_terminal=False)
    assert_stopped_cleanly(served, code, seconds, "SIGTERM")
    assert "Unclosed client session" not in served.output()  # the retrying client was closed


async def test_ctrl_c_while_discord_py_reconnects_to_a_discord_that_went_away(serve: object) -> None:
    async with FakeDiscord() as fake:
        served = await serve(discord_token=fake.token, discord_api_url=fake.api_base)  # type: ignore[operator]
        await served.wait_for("action=discord_ready")
        await fake.close()  # Discord is gone: the gateway drops, reconnects are refused
    await asyncio.sleep(1.0)  # discord.py is now in its reconnect loop
    code, seconds = await served.stop(signal.SIGINT, from_terminal=True)
    assert_stopped_cleanly(served, code, seconds, "SIGINT")


async def test_ctrl_c_while_the_dashboard_serves(serve: object) -> None:
    served = await serve(  # type: ignore[operator]
        dashboard_enabled="true", dashboard_password="password-for-the-test", dashboard_port=str(free_port())
    )
    await served.wait_for("imagine serve: dashboard started")
    code, seconds = await served.stop(signal.SIGINT, from_terminal=True)
    assert_stopped_cleanly(served, code, seconds, "SIGINT")
