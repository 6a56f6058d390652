"""Reading Slack's refusals, whatever came back: the `error` code of a JSON answer, or the HTTP status of
a body that is not JSON (a `text/plain` answer, the HTML page of an overloaded edge).

`slack_error(exc)` is the one way this bot reads a `SlackApiError`; `is_permanent(error)` says whether
waiting will ever change the answer.
"""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

# The bot cannot post in this conversation, or its token is no good: retrying will not help.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "account_inactive",
        "invalid_auth",
        "token_revoked",
        "token_expired",
        "not_authed",
        "missing_scope",
        "team_access_not_granted",
        "no_permission",
        "restricted_action",
        "ekm_access_denied",
        "channel_is_archived",
    }
)
# "The bot is not in that channel" (the frontend refuses such a command before queueing it).
NOT_IN_CHANNEL_ERRORS = frozenset({"not_in_channel", "channel_not_found", "is_archived"})


def slack_error(exc: SlackApiError) -> str:
    """Slack's error code (`channel_not_found`), or `http_502` when the body was not Slack's JSON."""
    response = exc.response
    data = getattr(response, "data", None)  # a dict, {} for an HTML page, a str for text/plain
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = getattr(response, "status_code", None)
    return f"http_{status}" if status else "no_response"


def is_permanent(error: str) -> bool:
    return error in PERMANENT_ERRORS
