"""The operations guide stays true: its settings table is `Settings`, its quoted messages are in the code,
the Slack manifest declares exactly the app's commands and events, the Discord permissions add up."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import yaml

from jobs.settings import Settings, env_name
from tests.ship.docs_tables import OPERATIONS, README, manifest_yaml, settings_table, table_in

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SLOT = "…"
TEST_ONLY_VARIABLES = {"IMAGINE_TEST_POSTGRES_URL"}  # read by the test suite, not by the product
_PERCENT = re.compile(r"%(\([a-z_]+\))?[-+ 0#]*\d*(\.\d+)?[sdrfi]")


def test_settings_table_is_generated_from_settings() -> None:
    for path in (OPERATIONS, README):
        generated = settings_table()
        assert table_in(path.read_text()) == generated, f"{path.name}: run python -m tests.ship.docs_tables"


def test_every_setting_named_in_docs_and_deploy_files_exists() -> None:
    known = {env_name(name) for name in Settings.model_fields} | TEST_ONLY_VARIABLES
    files = [*DOCS.glob("*.md"), README, ROOT / "Dockerfile", *ROOT.glob("docker-compose*.yml")]
    for path in files:
        for name in set(re.findall(r"\bIMAGINE_[A-Z0-9_]*[A-Z0-9]", path.read_text())):
            assert name in known, f"{path.name} names {name}, which is no setting"


def test_relative_links_resolve() -> None:
    for path in DOCS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{path.name} links to missing {target}"


# --- quoted messages ---------------------------------------------------------------------------------------


def _template(node: ast.AST) -> str | None:
    """A string literal with every formatted value (and %-placeholder) as `…`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    elif isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:
                parts.append(SLOT)
        text = "".join(parts)
    else:
        return None
    return re.sub(f"{SLOT}+", SLOT, _PERCENT.sub(SLOT, text))


@cache
def code_templates() -> tuple[str, ...]:
    found: set[str] = set()
    for room in ("bot", "generator", "jobs"):
        for path in (ROOT / room).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (template := _template(node)) is not None and len(template.replace(SLOT, "")) >= 8:
                    found.add(template)
    return tuple(found)


def _fragments_in_order(fragments: list[str], text: str) -> bool:
    position = 0
    for fragment in fragments:
        position = text.find(fragment, position)
        if position < 0:
            return False
        position += len(fragment)
    return True


def printed_by_code(message: str) -> bool:
    """Whether some string in the code prints `message` (`…` in it stands for what the code fills in):
    the message's pieces in order inside one literal, or one literal's pattern covering most of it
    (a prefix such as `imagine generator: ` printed around another module's message)."""
    fragments = [part for part in message.split(SLOT) if part.strip()]
    literal = sum(len(part) for part in fragments)
    for template in code_templates():
        if literal >= 15 and _fragments_in_order(fragments, template):
            return True
        pieces = [re.escape(part) for part in template.split(SLOT)]
        template_literal = len(template.replace(SLOT, ""))
        if template_literal >= 0.6 * literal and re.search(".*?".join(pieces), message):
            return True
    return False


def quoted_messages() -> list[str]:
    """The troubleshooting headings that quote a message, and the table rows that start with one."""
    messages = []
    troubleshooting = OPERATIONS.read_text().split("## 10. Troubleshooting", 1)[1]
    for line in troubleshooting.splitlines():
        if line.startswith("#### `") and line.endswith("`"):
            messages.append(line.removeprefix("#### `")[:-1])
        elif line.startswith("| `"):
            messages.append(line.removeprefix("| `").split("` |")[0])
    return messages


def test_troubleshooting_quotes_what_the_code_prints() -> None:
    messages = quoted_messages()
    assert len(messages) >= 10
    missing = [message for message in messages if not printed_by_code(message)]
    assert not missing, f"not printed by the code (any more?): {missing}"


def test_the_matcher_refuses_invented_messages() -> None:
    assert printed_by_code(
        "imagine generator: the database … is read-only: make it writable, or set … (…) to a writable place"
    )
    assert not printed_by_code("imagine generator: the GPU caught fire: …")
    assert not printed_by_code("Sorry, no generator is running right now, so everything is fine")


# --- the chat apps -----------------------------------------------------------------------------------------


def test_slack_manifest_is_the_generated_one() -> None:
    assert (DOCS / "slack-manifest.yml").read_text() == manifest_yaml(), (
        "run: python -m tests.ship.docs_tables"
    )


def test_slack_manifest_matches_the_app() -> None:
    manifest = yaml.safe_load((DOCS / "slack-manifest.yml").read_text())
    source = (ROOT / "bot/slack/app.py").read_text()
    registered = set(re.findall(r'app\.command\("(/[a-z-]+)"\)', source))
    declared = {command["command"] for command in manifest["features"]["slash_commands"]}
    assert declared == registered and len(registered) == 6
    events = set(re.findall(r'app\.event\("([a-z_]+)"\)', source))
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == events
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "files:write", "users:read", "channels:read"} <= scopes
    slack_md = (DOCS / "slack.md").read_text()
    for scope in scopes:
        assert f"`{scope}`" in slack_md
    for command in registered:
        assert f"`{command}" in slack_md


def test_the_http_manifest_takes_installs_by_oauth() -> None:
    from bot.slack.manifest import manifest
    from bot.slack.oauth import REDIRECT_PATH

    http = manifest(request_url="https://bot.example.com/slack/events")
    assert http["oauth_config"]["redirect_urls"] == ["https://bot.example.com" + REDIRECT_PATH]
    assert {"app_uninstalled", "tokens_revoked"} <= set(http["settings"]["event_subscriptions"]["bot_events"])
    assert "redirect_urls" not in manifest()["oauth_config"]  # Socket Mode: one workspace, one token


def test_discord_permissions_and_commands() -> None:
    from bot.discord.admin import ADMIN_COMMANDS
    from bot.discord.commands import COMMANDS
    from bot.discord.install import PERMISSIONS

    needed = PERMISSIONS  # what `imagine discord-invite` asks for (tests/discord/test_install.py)
    text = (DOCS / "discord.md").read_text()
    assert f"permissions={needed.value}" in text and f"`{needed.value}`" in text
    assert "scope=bot+applications.commands" in text
    for command in (*COMMANDS, *ADMIN_COMMANDS):
        assert f"`/{command.name}" in text, command.name
    intents = (ROOT / "bot/discord/client.py").read_text()
    assert "discord.Intents(guilds=True)" in intents and "discord.Intents(guilds=True)" in text
