"""The Slack app manifest for this bot: paste it at https://api.slack.com/apps → "Create New App" →
"From an app manifest", install the app, then set ``IMAGINE_SLACK_BOT_TOKEN`` (xoxb-, "OAuth & Permissions")
and either ``IMAGINE_SLACK_APP_TOKEN`` (xapp- with ``connections:write``, "Basic Information"; Socket
Mode, the default) or ``IMAGINE_SLACK_SIGNING_SECRET`` (HTTP mode, with ``--request-url``).

    python -m bot.slack.manifest [--name imagine] [--request-url https://host/slack/events]

The slash commands and their descriptions come from the handlers (`bot.slack.commands.SlackCommands`,
their docstrings), so the manifest cannot drift from the code.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from bot.slack.commands import SlackCommands

#: What each scope is for: the Web API methods the frontend and the poster call.
BOT_SCOPES = {
    "commands": "the slash commands",
    "chat:write": "chat.postMessage / chat.update / chat.postEphemeral: placeholders, buttons, notes",
    "files:write": "files.getUploadURLExternal + files.completeUploadExternal: the grids",
    "users:read": "users.info: is the user a workspace admin or owner",
    "channels:read": "conversations.info: is the bot in this public channel",
    "groups:read": "conversations.info: ... private channel",
    "im:read": "conversations.info: ... direct message",
    "mpim:read": "conversations.info: ... group direct message",
}
COMMAND_HANDLERS = {
    "/imagine": SlackCommands.imagine,
    "/imagine-queue": SlackCommands.imagine_queue,
    "/imagine-history": SlackCommands.imagine_history,
    "/imagine-usage": SlackCommands.imagine_usage,
    "/imagine-settings": SlackCommands.imagine_settings,
    "/imagine-ban": SlackCommands.imagine_ban,
}
UNINSTALL_EVENTS = ["app_uninstalled", "tokens_revoked"]
EVENTS_PATH = "/slack/events"
REDIRECT_PATH = "/slack/oauth_redirect"
MAX_DESCRIPTION_LENGTH = 100  # Slack's limit for a slash command's description (and usage hint: 1000)


def manifest(*, name: str = "imagine", request_url: str | None = None) -> dict[str, Any]:
    """The manifest; with `request_url` (…/slack/events) the app uses HTTP mode, else Socket Mode."""
    commands = []
    for command, handler in COMMAND_HANDLERS.items():
        description, hint = _help(handler.__doc__ or command)
        entry: dict[str, Any] = {"command": command, "description": description, "should_escape": True}
        if hint:
            entry["usage_hint"] = hint
        if request_url:
            entry["url"] = request_url
        commands.append(entry)
    interactivity: dict[str, Any] = {"is_enabled": True}
    events: dict[str, Any] = {"bot_events": ["app_home_opened"]}
    oauth_config: dict[str, Any] = {"scopes": {"bot": sorted(BOT_SCOPES)}}
    if request_url:
        interactivity["request_url"] = request_url
        events["request_url"] = request_url
        # HTTP mode can take installs by OAuth (bot/slack/oauth.py): Slack sends the admin back to the
        # redirect URL, and tells the app when a workspace removes it (its tokens are then deleted).
        events["bot_events"] += UNINSTALL_EVENTS
        oauth_config["redirect_urls"] = [request_url.removesuffix(EVENTS_PATH) + REDIRECT_PATH]
    return {
        "display_information": {
            "name": name,
            "description": "Draws pictures from your prompts with DALL·E mini",
        },
        "features": {
            "bot_user": {"display_name": name, "always_online": True},
            "app_home": {"home_tab_enabled": True, "messages_tab_enabled": False},
            "slash_commands": commands,
        },
        "oauth_config": oauth_config,
        "settings": {
            "event_subscriptions": events,
            "interactivity": interactivity,
            "org_deploy_enabled": False,
            "socket_mode_enabled": request_url is None,
            "token_rotation_enabled": False,
        },
    }


def _help(docstring: str) -> tuple[str, str]:
    """``"Draw pictures: `/imagine <prompt> [--images N]`."`` → (description, the hint after the command)."""
    first = docstring.strip().splitlines()[0]
    description, _, example = first.partition(": `")
    hint = re.sub(r"^/\S+\s*", "", example.rstrip(".`").rstrip("`"))
    return description.strip()[:MAX_DESCRIPTION_LENGTH], hint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="imagine", help="the app's and bot user's name")
    parser.add_argument("--request-url", help="HTTP mode: https://<host>/slack/events (default: Socket Mode)")
    args = parser.parse_args(argv)
    print(json.dumps(manifest(name=args.name, request_url=args.request_url), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
