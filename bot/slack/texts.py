"""Every sentence the Slack frontend and the Slack poster show a person, in one place.

Named by what they answer (bolt-python's ``slack_bolt/logger/messages.py`` habit): ``refused_*`` for
requests turned down, ``placeholder_*`` for the channel message a job edits as it goes, ``home_*`` for
the App Home tab. Sentences Discord says too come from `bot.messages` (the platform-neutral module), so
both refuse the same thing in the same words; queue refusals (`jobs.errors.Refused`) carry their own
``.reason``. What is here is Slack's own: its commands' names, mrkdwn, Block Kit captions.

Slack text is mrkdwn: anything a user typed (a prompt, a reason) goes through `escape` first, so a
prompt like ``<!channel>`` is shown, never sent as a mention.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot import messages
from bot.slack.options import flag_of
from jobs.durations import duration
from jobs.models import Ban, Job, SpaceSettings, Status
from jobs.options import JobOptions
from jobs.reports import UsageRow

PROGRESS_BAR_CELLS = 10

_STATUS_EMOJI = {
    Status.QUEUED: "⏳",
    Status.RUNNING: "🎨",
    Status.DONE: "✅",
    Status.FAILED: "❌",
    Status.CANCELLED: "🚫",
}


# --- small pieces --------------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack's three escapes: user text can then never become a mention, link or channel ping."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quoted(prompt: str, limit: int = 200) -> str:
    prompt = prompt if len(prompt) <= limit else prompt[: limit - 1] + "…"
    return f"“{escape(prompt)}”"


def ready_in(eta: timedelta | None) -> str:
    """``ready in about 3 min``, or ``no estimate yet`` before the queue has timed any render."""
    return messages.eta_words(eta) if eta is None else f"ready in {messages.eta_words(eta)}"


def progress_bar(progress: float) -> str:
    filled = max(0, min(PROGRESS_BAR_CELLS, round(progress * PROGRESS_BAR_CELLS)))
    return "▰" * filled + "▱" * (PROGRESS_BAR_CELLS - filled) + f" {round(progress * 100)}%"


def _when(moment: datetime) -> str:
    return messages.when(moment)


# --- /imagine and the buttons: answers to the requester (ephemeral) ------------------------------------


def queued(job: Job, position: int, eta: timedelta | None) -> str:
    return (
        f"{_STATUS_EMOJI[Status.QUEUED]} Queued {quoted(job.prompt)} as job {job.id}: "
        f"position {position} in the queue, {ready_in(eta)}. "
        "I'll post the pictures in this channel."
    )


def still_queuing() -> str:
    """The ack when the queue is slow to answer: the position follows in a second message."""
    return "⏳ Got it — adding your prompt to the queue…"


def usage_help(usage: str) -> str:
    """``/imagine --help``: the usage line, no warning sign."""
    return escape(usage)


def refused(reason: str) -> str:
    """A queue refusal (bad prompt or option, ban, blocked word, caps, quota with its reset time)."""
    return f"⚠️ {escape(messages.refused(reason))}"


def refused_not_in_channel(channel_id: str) -> str:
    return (
        f"⚠️ I'm not a member of <#{channel_id}>, so I can't post pictures there. "
        "Invite me with `/invite @imagine` (or add the app from the channel's details), then try again."
    )


def refused_no_worker() -> str:
    return f"⚠️ {messages.refused_no_worker()}"


def refused_admin_only(command: str) -> str:
    return f"⚠️ `{command}` is for workspace admins and owners (or the admins this bot is configured with)."


def refused_admin_check_failed() -> str:
    return "⚠️ I couldn't check whether you're an admin (Slack didn't answer). Try again in a minute."


def refused_bad_button() -> str:
    return "⚠️ That button doesn't belong to a job I know. It may be from an older version of the bot."


def refused_job_not_found(job_id: int) -> str:
    return f"⚠️ {messages.refused_job_not_found(job_id)}"


def refused_not_yours(job_id: int) -> str:
    return f"⚠️ {messages.refused_not_yours(job_id)}"


def failed_internal() -> str:
    return f"❌ {messages.failed_internal()}"


def cancel_answer(job: Job) -> str:
    return messages.cancel_answer(job)


def parameters(job: Job, scores: dict[int, float | None] | None = None) -> str:
    """What the Parameters button shows: enough to reproduce the grid, and each picture's CLIP score."""
    options = job.options
    lines = [
        f"*Job {job.id}* ({job.kind}, {job.status}) by {escape(job.user_name or job.user_id)}",
        f"*Prompt:* {quoted(job.prompt, 1000)}",
        "   ".join(f"*{label}:* {escape(value)}" for label, value in options.shown()),
    ]
    ranked = messages.scores_text(scores or {})
    if ranked:
        lines.append(f"*{messages.SCORES_LABEL}:* {ranked}")
    if job.parent_job_id is not None:
        image = "" if job.image_index is None else f", image {job.image_index + 1}"
        lines.append(f"*From:* job {job.parent_job_id}{image}")
    if job.error:
        lines.append(f"*Error:* {escape(job.error)}")
    lines.append(f"Reproduce: `/imagine {escape(job.prompt)} {reproduce_flags(options)}`")
    return "\n".join(lines)


def reproduce_flags(options: JobOptions) -> str:
    """`--images 4 --seed 7` and every option that is not at its default: enough to draw it again."""
    words = []
    for name, value in options.changed().items():
        shown = "off" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
        words.append(f"{flag_of(name)} {escape(shown)}")
    return " ".join(words)


# --- the placeholder message in the channel (chat.update as the job moves) ----------------------------
# Plain text: shown in a plain_text section (so a prompt is never interpreted); senders pass
# `escape(...)` of the same sentence as the message's mrkdwn `text` fallback.


def _by(job: Job) -> str:
    return job.user_name or job.user_id


def _what(job: Job) -> str:
    if job.kind == "reroll":
        return f"a reroll of job {job.parent_job_id}"
    if job.kind == "variation":
        return f"variations of image {(job.image_index or 0) + 1} of job {job.parent_job_id}"
    if job.kind == "pick":
        return f"image {(job.image_index or 0) + 1} of job {job.parent_job_id}"
    prompt = job.prompt if len(job.prompt) <= 200 else job.prompt[:199] + "…"
    return f"“{prompt}”"


def placeholder_queued(job: Job, position: int, eta: timedelta | None) -> str:
    return (
        f"⏳ {_by(job)} asked for {_what(job)} (job {job.id}) — queued, position {position}, {ready_in(eta)}."
    )


def placeholder_progress(job: Job, progress: float) -> str:
    return f"🎨 Drawing {_what(job)} for {_by(job)} (job {job.id})… {progress_bar(progress)}"


def preview_alt(job: Job, progress: float) -> str:
    """The alt text of the preview image on the placeholder."""
    return f"Preview of {_what(job)} (job {job.id}) at {round(progress * 100)} % drawn"


def preview_title(job: Job) -> str:
    return f"imagine job {job.id}: preview"


def placeholder_done(job: Job) -> str:
    return f"✅ {_what(job)} for {_by(job)} (job {job.id}): done."


def placeholder_failed(job: Job, reason: str) -> str:
    if job.status is Status.CANCELLED:
        return f"🚫 {_what(job)} for {_by(job)} (job {job.id}) was cancelled."
    return f"❌ Couldn't draw {_what(job)} for {_by(job)} (job {job.id}): {reason}"


def failure_notice(job: Job, reason: str) -> str:
    """The ephemeral note to the requester when their job failed (the reason is the queue's, user-facing)."""
    return f"❌ Job {job.id} {quoted(job.prompt)} failed: {escape(reason)}. Try again, or change the prompt."


# --- the result (uploaded grid, buttons message) ------------------------------------------------------


def grid_title(job: Job) -> str:
    return f"{job.prompt[:200]} (job {job.id})"


def grid_comment(job: Job) -> str:
    """The upload's initial_comment (mrkdwn: the requester is mentioned, the prompt escaped)."""
    if job.kind == "pick":
        return f"Image {(job.image_index or 0) + 1} of job {job.parent_job_id}, for <@{job.user_id}>"
    return f"{quoted(job.prompt)} for <@{job.user_id}> · job {job.id} · {reproduce_flags(job.options)}"


def buttons_caption(job: Job) -> str:
    """Plain text above the buttons (Block Kit plain_text: shown as typed)."""
    if job.kind == "pick":
        return f"Image {(job.image_index or 0) + 1} of job {job.parent_job_id}: V1 for variations, or reroll."
    return f"Job {job.id}: U = pick an image, V = variations of it, 🔄 = same prompt, new seed."


def buttons_fallback(job: Job) -> str:
    """The notification text of the buttons message (Slack needs `text` beside `blocks`)."""
    return f"Pictures for {quoted(job.prompt, 150)} (job {job.id}) are ready"


# --- /imagine-queue and /imagine-history ---------------------------------------------------------------


def queue_summary(entries: Sequence[tuple[Job, int, timedelta | None]], workers_online: int) -> str:
    header = f"Generators online: {workers_online}."
    if not entries:
        return f"{messages.queue_none_yours()} {header}"
    lines = [f"*Your jobs in the queue* ({header})"]
    for job, position, eta in entries:
        where = "drawing now" if job.status is Status.RUNNING else f"position {position}"
        lines.append(
            f"{_STATUS_EMOJI[job.status]} job {job.id} {quoted(job.prompt, 80)} — {where}, {ready_in(eta)}"
        )
    return "\n".join(lines)


def history(jobs: Sequence[Job]) -> str:
    if not jobs:
        return messages.history_empty()
    lines = ["*Your recent pictures*"]
    lines += [history_line(job) for job in jobs]
    return "\n".join(lines)


def history_line(job: Job) -> str:
    extra = f" — {escape(job.error)}" if job.error and job.status is Status.FAILED else ""
    return (
        f"{_STATUS_EMOJI[job.status]} job {job.id} · {_when(job.created_at)} · {quoted(job.prompt, 80)} · "
        f"{job.images} image(s), seed {job.options.seed}{extra}"
    )


# --- admin commands ------------------------------------------------------------------------------------

SETTINGS_USAGE = (
    "Usage: `/imagine-settings` shows this workspace's settings; change one with "
    "`/imagine-settings channels #art #random` (or `channels all`), "
    "`quota 50` (images a day; `quota default`), "
    "`running 2`, `queued 10`, `candidates 2` (drawn per picture shown), "
    "`block word …`, `unblock word …`, `admins @ann @bob` (or `admins none`)."
)
BAN_USAGE = (
    "Usage: `/imagine-ban @user [reason]` bans, `/imagine-ban remove @user` lifts it, "
    "`/imagine-ban list` lists this workspace's bans."
)
USAGE_USAGE = "Usage: `/imagine-usage [days]` (default 7, at most 90), optionally `@user` for one person."


def settings_shown(space: SpaceSettings, *, defaults: dict[str, int]) -> str:
    def limit(value: int | None, key: str) -> str:
        return f"{value}" if value is not None else f"default ({defaults[key]})"

    channels = " ".join(f"<#{c}>" for c in space.allowed_channels) or "every channel"
    words = ", ".join(f"`{escape(w)}`" for w in space.blocked_words) or "none"
    admins = " ".join(f"<@{u}>" for u in space.admin_user_ids) or "workspace admins and owners only"
    default_candidates = defaults.get("candidates_per_image") or "1 on CPU, 2 on GPU"
    candidates = space.candidates_per_image or f"default ({default_candidates})"
    return "\n".join(
        [
            "*/imagine settings for this workspace*",
            f"Allowed channels: {channels}",
            f"Daily image quota per user: {limit(space.daily_quota_images, 'daily_quota_images')}",
            f"Jobs drawing at once per user: {limit(space.max_running_per_user, 'max_running_per_user')}",
            f"Jobs waiting per user: {limit(space.max_queued_per_user, 'max_queued_per_user')}",
            f"Candidates drawn per picture shown: {candidates}",
            f"Blocked words: {words}",
            f"Extra admins: {admins}",
        ]
    )


def settings_changed(what: str, space: SpaceSettings, *, defaults: dict[str, int]) -> str:
    return f"✅ Changed {what}.\n" + settings_shown(space, defaults=defaults)


def settings_bad(problem: str) -> str:
    return f"⚠️ {escape(messages.settings_bad(problem.rstrip('.')))}\n{SETTINGS_USAGE}"


def banned(user_id: str, reason: str) -> str:
    because = f" Reason, kept for admins: {escape(reason)}" if reason else ""
    return f"🔨 {messages.banned(f'<@{user_id}>')}{because}"


def unbanned(user_id: str, was_banned: bool) -> str:
    return messages.unbanned(f"<@{user_id}>", was_banned)


def ban_list(bans: Sequence[Ban]) -> str:
    if not bans:
        return "Nobody is banned from /imagine in this workspace."
    lines = ["*Banned from /imagine here*"]
    for ban in bans:
        reason = f" — {escape(ban.reason)}" if ban.reason else ""
        by = f" by <@{ban.banned_by}>" if ban.banned_by else ""
        lines.append(f"<@{ban.user_id}> since {_when(ban.created_at)}{by}{reason}")
    return "\n".join(lines)


def ban_bad(problem: str) -> str:
    return f"⚠️ {escape(problem)}\n{BAN_USAGE}"


def usage_bad(problem: str) -> str:
    return f"⚠️ {escape(problem)}\n{USAGE_USAGE}"


# --- App Home -------------------------------------------------------------------------------------------


def home_title() -> str:
    return "🎨 /imagine"


def home_intro() -> str:
    return (
        "Type `/imagine <prompt>` in any channel I'm in, e.g. `/imagine a watercolor fox --images 4`. "
        "Options: `--images N` (1–9), `--seed S`, `--guidance G`. "
        "`/imagine-queue` shows where your jobs are, `/imagine-history` what you asked for."
    )


def home_recent_header(count: int) -> str:
    return f"Your {count} most recent pictures" if count else "You haven't asked for any pictures yet."


def home_usage_header(days: int) -> str:
    return f"Workspace usage, last {days} days (admins only)"


def usage_report(
    total: Sequence[UsageRow], by_user: Sequence[UsageRow], *, days: int, user_id: str | None
) -> str:
    """`/imagine-usage`: the workspace's (or one user's) totals, then the heaviest users."""
    who = f"<@{user_id}>" if user_id else "this workspace"
    if not total:
        return messages.usage_empty()
    row = total[0]
    lines = [
        f"*/imagine usage for {who}, last {days} days*",
        f"{row.jobs} jobs · {row.images} images asked for · {row.done} done · {row.failures} failed · "
        f"{row.cancellations} cancelled · {row.queued_or_running} waiting or drawing",
        f"Wait: mean {_seconds(row.mean_wait_s)}, p95 {_seconds(row.p95_wait_s)} · "
        f"Render: mean {_seconds(row.mean_render_s)}, p95 {_seconds(row.p95_render_s)} · "
        f"GPU time {row.gpu_seconds:.1f} s",
    ]
    if not user_id and by_user:
        lines.append("*Top users*")
        for user in sorted(by_user, key=lambda r: (-r.images, r.key))[:10]:
            user_id = user.key.partition(":")[2]  # keys are "slack:U…"
            lines.append(
                f"<@{user_id}>: {user.jobs} jobs, {user.images} images, {user.failures} failed, "
                f"GPU {user.gpu_seconds:.1f} s"
            )
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "–" if value is None else duration(value)


def workspace_uninstalled(team_id: str) -> str:
    """Why a job of a workspace that removed the app is undeliverable (admins read it on the dashboard)."""
    return f"the app is not installed in Slack workspace {team_id} (uninstalled or its token revoked)"
