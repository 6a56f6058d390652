"""The generated parts of docs/: the settings table (`jobs.settings.markdown_table`, as in the README) and
the Slack manifest (`bot.slack.manifest.manifest`, as YAML).

    python -m tests.ship.docs_tables      rewrites both in place; tests/ship/test_docs.py checks them
"""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.slack.manifest import manifest
from jobs.settings import markdown_table

DOCS = Path(__file__).resolve().parents[2] / "docs"
OPERATIONS = DOCS / "operations.md"
README = DOCS.parent / "README.md"
SLACK_MANIFEST = DOCS / "slack-manifest.yml"
START = "<!-- settings table: written by `python -m tests.ship.docs_tables`, checked by tests/ship -->"
END = "<!-- end of settings table -->"
MANIFEST_HEADER = """\
# Slack app manifest for the /imagine bot (Socket Mode): https://api.slack.com/apps → Create New App →
# From a manifest. Written from `python -m bot.slack.manifest` by `python -m tests.ship.docs_tables`.
# HTTP mode: `python -m bot.slack.manifest --request-url https://<your host>/slack/events` instead.
"""


def settings_table() -> str:
    return markdown_table().strip()


def manifest_yaml() -> str:
    return MANIFEST_HEADER + yaml.safe_dump(manifest(), sort_keys=False, allow_unicode=True, width=110)


def table_in(text: str) -> str:
    start = text.index(START) + len(START)
    return text[start : text.index(END, start)].strip()


def rewrite() -> None:
    for path in (OPERATIONS, README):
        text = path.read_text()
        start = text.index(START) + len(START)
        path.write_text(text[:start] + "\n" + settings_table() + "\n" + text[text.index(END, start) :])
    SLACK_MANIFEST.write_text(manifest_yaml())


if __name__ == "__main__":
    rewrite()
