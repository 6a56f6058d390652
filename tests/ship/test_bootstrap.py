"""scripts/bootstrap.sh with a stand-in Python that records the pip commands: TORCH_INDEX_URL reaches the
torch line only, TORCH_SPEC still applies, and a second run (torch present) installs no torch."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# `-c 'import torch'` fails until a pip install of torch happened; every pip command is written down.
FAKE_PYTHON = """#!/usr/bin/env bash
here=$(dirname "$0")
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  shift 2; echo "pip $*" >> "$here/../../pip.log"
  case "$*" in *torch==*) touch "$here/../../torch-installed";; esac
  exit 0
fi
if [ "$1" = "-c" ]; then
  case "$2" in
    *"print("*) echo "torch 0-fake"; exit 0;;
    *"import torch"*) [ -e "$here/../../torch-installed" ]; exit $?;;
    *taming*|*dalle_mini*) exit 1;;  # not installed: the script installs them every time here
    *) exit 0;;
  esac
fi
exit 0
"""


def _checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts/bootstrap.sh", tmp_path / "scripts/bootstrap.sh")
    python = tmp_path / ".venv/bin/python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def _run(checkout: Path, *args: str, **env: str) -> list[str]:
    log = checkout / "pip.log"
    log.unlink(missing_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in ("TORCH_SPEC", "TORCH_INDEX_URL")}
    done = subprocess.run(
        ["bash", str(checkout / "scripts/bootstrap.sh"), *args],
        env={**base, "PYTHON": "python3", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "bootstrap: .venv ready (torch 0-fake)" in done.stdout
    return log.read_text().splitlines() if log.exists() else []


def test_default_torch_then_the_project(tmp_path: Path) -> None:
    lines = _run(_checkout(tmp_path))
    assert lines[0] == "pip --disable-pip-version-check -q install torch==2.13.0"
    assert lines[1] == "pip --disable-pip-version-check -q install -e ."
    assert lines[2] == "pip --disable-pip-version-check -q install --no-deps taming-transformers==0.0.1"


def test_index_url_only_on_the_torch_line(tmp_path: Path) -> None:
    url = "https://download.pytorch.org/whl/cu130"
    lines = _run(_checkout(tmp_path), "--dev", TORCH_INDEX_URL=url, TORCH_SPEC="torch==2.13.0")
    assert lines[0] == f"pip --disable-pip-version-check -q install --index-url {url} torch==2.13.0"
    assert lines[1] == "pip --disable-pip-version-check -q install -e .[dev]"
    assert lines[3] == "pip --disable-pip-version-check -q install --no-deps dalle-mini==0.1.5"
    assert sum(url in line for line in lines) == 1


def test_second_run_installs_no_torch(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    _run(checkout, TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu")
    again = _run(checkout, TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu")
    assert not [line for line in again if "torch==" in line]
    assert again[0] == "pip --disable-pip-version-check -q install -e ."
    assert again[1:] == ["pip --disable-pip-version-check -q install --no-deps taming-transformers==0.0.1"]
