"""Fixtures every suite shares. Each suite's own live in its folder's conftest.py."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No IMAGINE_* setting from the developer's shell leaks into a test (IMAGINE_TEST_* may stay)."""
    for name in list(os.environ):
        if name.startswith("IMAGINE_") and not name.startswith("IMAGINE_TEST_"):
            monkeypatch.delenv(name)
