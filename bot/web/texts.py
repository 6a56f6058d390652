"""Every sentence the dashboard's Python code shows an admin (flash messages, refusals, error pages), named
by what it answers — as `bot/messages.py` does for the chat frontends. Page labels live in the templates.

`error_*` / `refused_*` say what went wrong and what to do; the others confirm what was done.
"""

from __future__ import annotations

# --- sign-in ---------------------------------------------------------------------------------------------

ERROR_WRONG_PASSWORD = "Wrong password."
ERROR_SIGN_IN_FORM_EXPIRED = "The sign-in form expired (or cookies are blocked). Please try again."
REFUSED_SIGNED_OUT = "Sign in first: open /login in a browser (or send Authorization: Bearer <password>)."
ADD_TO_DISCORD = "Add to Discord"
ADD_TO_SLACK = "Add to Slack"
SIGN_IN_WITH_DISCORD = "Sign in with Discord"
DISCORD_SIGN_IN_OFF = "Sign in with Discord is not set up on this dashboard."
REFUSED_OAUTH_STATE = "That sign-in did not start here or has expired: sign in again."
REFUSED_OPERATOR_ONLY = "This page is for the operator (the dashboard password)."
REFUSED_NOT_YOURS = "Only the person who asked for these pictures can delete them."
REFUSED_NOT_YOUR_SERVER = "You do not manage that server (Manage Server, where the bot is installed)."


SLACK_SIGN_IN_OFF = "Sign in with Slack is not set up on this dashboard."


def refused_sign_in(problem: str) -> str:
    return f"The sign-in was not completed ({problem}). Try again from the sign-in page."


def refused_platform_sign_in(platform: str, problem: str) -> str:
    """`platform` as people write it: Discord, Slack."""
    return f"{platform} did not sign you in ({problem}). Try again from the sign-in page."


def refused_slack_id_token(problem: str) -> str:
    return f"Slack's sign-in token did not check out ({problem}), so nobody was signed in. Sign in again."


REFUSED_CSRF = "This form expired or did not come from the dashboard: reload the page and try again."
ERROR_PAGE_FAILED = (
    "Something went wrong showing this page; the details are in the dashboard's log. "
    "If the database is down, /healthz says so."
)


def refused_too_many_sign_ins(retry_after_seconds: int) -> str:
    return f"Too many failed sign-ins from your address. Try again in {retry_after_seconds} seconds."


# --- jobs ------------------------------------------------------------------------------------------------


def error_no_such_job(job_id: object) -> str:
    return f"There is no job {job_id}."


ERROR_PICTURE_NOT_STORED = "That picture is not stored (it may have been deleted)."


def pictures_deleted(job_id: int, count: int) -> str:
    return f"Deleted {count} stored pictures of job {job_id}; its usage record is kept."


def error_no_pictures(job_id: int) -> str:
    return f"Job {job_id} had no stored pictures."


def job_cancelled(job_id: int) -> str:
    return f"Job {job_id} cancelled."


def job_cancel_requested(job_id: int) -> str:
    return f"Job {job_id} is rendering: its generator will stop it within a heartbeat."


def error_nothing_to_cancel(job_id: int, status: str) -> str:
    return f"Job {job_id} is already {status}; nothing to cancel."


def error_not_cancelled(problem: str) -> str:
    return f"Not cancelled: {problem}."


def queued(job_id: int, position: int) -> str:
    return f"Queued as job {job_id} (place {position} in the queue)."


# --- moderation ------------------------------------------------------------------------------------------


def space_word(platform: str) -> str:
    """What a platform calls the place the bot is installed in."""
    return {"discord": "server", "slack": "workspace"}.get(platform, "guild/workspace")


def banned(platform: str, user_id: str, guild_id: str) -> str:
    where = f"{space_word(platform)} {guild_id}" if guild_id else f"all of {platform}"
    return f"Banned {platform} user {user_id} in {where}."


def error_not_banned(problem: str) -> str:
    return f"Not banned: {problem}."


def unbanned(platform: str, user_id: str) -> str:
    return f"Unbanned {platform} user {user_id}."


def error_was_not_banned(platform: str, user_id: str) -> str:
    return f"{platform} user {user_id} was not banned there."


def error_not_unbanned(problem: str) -> str:
    return f"Not unbanned: {problem}."


def space_saved(platform: str, guild_id: str) -> str:
    return f"Saved the settings of {platform} {guild_id or 'direct messages / no workspace'}."


def error_space_not_saved(problem: str) -> str:
    return f"Not saved: {problem}."
