"""Fixtures every suite shares. Each suite's own live in its folder's conftest.py.

`pytest_plugins` may only be declared here, in the top-level conftest: the plugins it names serve the
whole tree, and a suite that needs other behaviour overrides a fixture by name in its own conftest.py
(tests/slack/imagine and tests/discord redefine `db_url` and `queue`, tests/web its databases).
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    # The queue's real databases: `db_url` (SQLite and Postgres), `engine`, `make_queue`, `queue`.
    "tests.jobs.fixtures",
]


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No IMAGINE_* setting from the developer's shell leaks into a test (IMAGINE_TEST_* may stay)."""
    for name in list(os.environ):
        if name.startswith("IMAGINE_") and not name.startswith("IMAGINE_TEST_"):
            monkeypatch.delenv(name)
