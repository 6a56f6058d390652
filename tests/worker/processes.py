"""Real generator processes for the crash tests: `python -m generator.serve` with its own environment,
its output in a file the test reads (log lines are data: `action=… job_id=…`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from generator.testing import tiny_extras

REPO = Path(__file__).resolve().parents[2]


def generator_env(
    db_url: str, data_dir: Path, tiny: tuple[Path, Path] | None, **settings: object
) -> dict[str, str]:
    """The environment of a generator in a test: no IMAGINE_* from the developer's shell, short leases."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGINE_")}
    env.update(
        IMAGINE_DATABASE_URL=db_url,
        IMAGINE_DATA_DIR=str(data_dir),
        IMAGINE_LEASE_SECONDS="10",  # generous: the test machine may be busy
        IMAGINE_HEARTBEAT_SECONDS="0.5",
        IMAGINE_BATCH_IMAGES="4",
        IMAGINE_LOG_LEVEL="INFO",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(REPO),
    )
    if tiny is not None:
        clip, upscaler = tiny_extras(tiny[0])
        env.update(
            IMAGINE_MODEL_DIR=str(tiny[0]),
            IMAGINE_VQGAN_DIR=str(tiny[1]),
            IMAGINE_CLIP_DIR=str(clip),
            IMAGINE_UPSCALER_DIR=str(upscaler),
        )
    env.update({f"IMAGINE_{name.upper()}": str(value) for name, value in settings.items()})
    return env


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log_path: Path
    started_at: float

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def actions(self, action: str) -> Counter[int]:
        """How many log lines with `action=<action>` each job id has."""
        pattern = re.compile(rf"\baction={re.escape(action)}\b.*?\bjob_id=(\d+)")
        return Counter(int(match.group(1)) for match in pattern.finditer(self.output()))

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)


def start(args: list[str], env: dict[str, str], log_path: Path) -> Process:
    with open(log_path, "ab") as log_file:
        popen = subprocess.Popen(
            [sys.executable, *args], env=env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT
        )
    return Process(popen, log_path, time.monotonic())


DELIVERY_HOLD_SECONDS = "3"  # a result a killed generator had taken for posting is retried this soon


def start_generator(env: dict[str, str], log_path: Path, *flags: str) -> Process:
    return start(
        ["-m", "generator.serve", "--delivery-hold-seconds", DELIVERY_HOLD_SECONDS, *flags], env, log_path
    )
