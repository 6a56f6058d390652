"""Commands in messages are spelled as this install runs them (`.venv/bin/imagine`), not as bare names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jobs.hints import command_hint


def test_commands_are_relative_to_the_working_directory_below_them(monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = Path(sys.executable).parent
    monkeypatch.chdir(bin_dir.parent.parent)  # the directory holding the environment (.venv)
    assert command_hint("imagine") == f"{bin_dir.parent.name}/bin/imagine"
    assert command_hint("python") == f"{bin_dir.parent.name}/bin/{Path(sys.executable).name}"


def test_elsewhere_they_are_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert command_hint("imagine") == str(Path(sys.executable).with_name("imagine"))
