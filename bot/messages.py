"""Platform-neutral sentences the /imagine frontends show people: help, button labels, status phrases and
the refusals that do not come from the queue.

Named by what they answer (bolt-python's `slack_bolt/logger/messages.py` habit): `refused_*` for requests
turned down, `status_*` for where a job is, `help_*` for command and option descriptions. A queue refusal
(`jobs.errors.Refused`) carries its own `.reason`; `refused(reason)` only frames it, so Discord and Slack
refuse the same thing in the same words. Platform markup (Discord embeds, Slack mrkdwn) stays in each
platform's module; nothing here escapes or formats for a platform.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from jobs.durations import duration
from jobs.models import Job, Status
from jobs.options import help_of

# --- help: command and option descriptions (Discord shows at most 100 characters) ------------------------

# The /imagine parameters Discord shows, by parameter name; each option's words are `JobOptions`'.
HELP_IMAGINE_OPTIONS = {
    "prompt": "What to draw, in words",
    "images": help_of("images"),
    "seed": help_of("seed"),
    "guidance": help_of("guidance_scale"),
    "temperature": help_of("temperature"),
    "top_k": help_of("top_k"),
}
HELP_CANCEL_OPTIONS = {"job": "The job number (default: your newest waiting or drawing job)"}
HELP_USAGE_OPTIONS = {
    "period": "How far back to count (default: the last 7 days)",
    "user": "Only this person",
}
HELP_SETTINGS_OPTIONS = {
    "channels": "Channels where /imagine may run (mentions or ids; 'all' allows every channel)",
    "max_running": "Jobs one person may have drawing at once (0: the bot's default)",
    "max_queued": "Jobs one person may have waiting (0: the bot's default)",
    "daily_quota": "Images per person per UTC day (0: no limit)",
    "candidates": "Pictures drawn per one shown, CLIP keeps the best (1: rank only; 0: default)",
    "blocked_words": "Words prompts may not contain, comma-separated ('none' clears the list)",
}
HELP_BAN_OPTIONS = {"user": "Who may no longer use /imagine here", "reason": "Why (kept for admins)"}
HELP_UNBAN_OPTIONS = {"user": "Who may use /imagine here again"}

# --- buttons --------------------------------------------------------------------------------------------

LABEL_PICK = "U{number}"  # pick image `number` (1-based): that image alone, full size
LABEL_VARIATION = "V{number}"  # variations of image `number`
LABEL_REROLL = "Reroll"
LABEL_CANCEL = "Cancel"
LABEL_INFO = "Parameters"
LABEL_UPSCALE = "Upscale"  # 4× larger, as a reply (under a picked image)

# --- where a job is ---------------------------------------------------------------------------------------

STATUS_TITLE = {
    Status.QUEUED: "Queued",
    Status.RUNNING: "Rendering",
    Status.DONE: "Done",
    Status.FAILED: "Failed",
    Status.CANCELLED: "Cancelled",
}


def eta_words(eta: timedelta | None) -> str:
    """A plain-words ETA for places that cannot show a live timestamp."""
    return "no estimate yet" if eta is None else f"about {duration(eta)}"


def status_line(job: Job, position: int | None = None) -> str:
    """One line for /queue and /history: `#12 Queued (position 3)`, `#11 Done`, `#10 Failed: reason`."""
    line = f"#{job.id} {STATUS_TITLE[job.status]}"
    if job.status is Status.QUEUED and position:
        line += f" (position {position})"
    elif job.status is Status.RUNNING:
        line += f" ({round(job.progress * 100)} %)"
    elif job.status is Status.FAILED and job.error:
        line += f": {job.error}"
    return line


def result_ready_mention(user_mention: str) -> str:
    """The text of a result posted as a new message (the original answer could no longer be edited)."""
    return f"{user_mention} your picture is ready."


def failure_mention(user_mention: str) -> str:
    return f"{user_mention} your picture could not be drawn."


def too_large_to_upload() -> str:
    return "The picture is too large to upload here, even as a smaller JPEG; ask an admin for the file."


# --- answers to the requester -------------------------------------------------------------------------------


def refused(reason: str) -> str:
    """A queue refusal (bad prompt or option, ban, blocked word, caps, quota with its reset time)."""
    reason = reason.rstrip(".")
    return f"Sorry, I can't draw that: {reason}."


def refused_no_worker() -> str:
    return (
        "Sorry, no generator is running right now, so nothing would be drawn: "
        "try again in a few minutes, or ask an admin to start one."
    )


def refused_admin_only(command: str) -> str:
    return f"Only this server's admins (Manage Server permission, or named in /settings) may use /{command}."


def refused_guild_only(command: str) -> str:
    return f"/{command} works in a server, not in direct messages."


def refused_job_not_found(job_id: int) -> str:
    return f"There is no job #{job_id}: check its number in your history."


def refused_not_yours(job_id: int) -> str:
    return f"Only the person who asked for job #{job_id}, or an admin, may cancel it."


def refused_nothing_to_cancel() -> str:
    return "You have no job waiting or drawing to cancel."


def failed_internal() -> str:
    return "Something went wrong on my side; the admins can find the details in the log. Please try again."


def cancel_answer(job: Job) -> str:
    if job.status is Status.CANCELLED:
        return f"Cancelled job #{job.id}."
    if job.status is Status.RUNNING and job.cancel_requested:
        return f"Stopping job #{job.id}: it leaves the batch within a few seconds."
    return f"Job #{job.id} is already {STATUS_TITLE[job.status].lower()}; there is nothing to cancel."


SCORES_LABEL = "CLIP score"
SCORES_HELP = "how well each picture matches the prompt (cosine similarity); the grid is ordered best first"


def scores_text(scores: dict[int, float | None]) -> str | None:
    """`1: 0.312 · 2: 0.298 …` for the ranked images of a job; None when none was ranked."""
    shown = [f"{index + 1}: {score:.3f}" for index, score in sorted(scores.items()) if score is not None]
    return " · ".join(shown) or None


def enqueued_child(kind: str, parent_id: int) -> str:
    """The heading of a job a button made: `Reroll of #12`, `Variation of #12 image 3`, `Pick of #12`."""
    return f"{kind.capitalize()} of #{parent_id}"


# --- /queue, /history ---------------------------------------------------------------------------------------


def queue_depth(queued_jobs: int, queued_images: int, running_jobs: int, workers: int) -> str:
    worker_words = "no generator online" if workers == 0 else f"{workers} generator(s) online"
    return f"{queued_jobs} job(s) waiting ({queued_images} images), {running_jobs} drawing; {worker_words}."


def queue_none_yours() -> str:
    return "You have nothing waiting or drawing."


def history_empty() -> str:
    return "You have not asked for any pictures yet: try /imagine."


# --- admin answers ------------------------------------------------------------------------------------------


def usage_empty() -> str:
    return "Nobody used /imagine here in that period."


def settings_bad(problem: str) -> str:
    return f"Settings not changed: {problem}."


def banned(user_mention: str) -> str:
    return f"{user_mention} may no longer use /imagine here."


def unbanned(user_mention: str, was_banned: bool) -> str:
    if not was_banned:
        return f"{user_mention} was not banned here."
    return f"{user_mention} may use /imagine here again."


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
