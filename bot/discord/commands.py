"""The everyone commands of the Discord frontend — /imagine, /queue, /history, /cancel — and the buttons.

One command, one async function; its docstring is the help Discord shows (discord.py
examples/app_commands/basic.py). Dependencies come from the client (`interaction.client`, an
`ImagineBot`: the queue and the clock), never from globals.

The 3-second rule: /imagine and the buttons check what needs no database at once (bad prompts and options
are refused ephemerally without a query), then enqueue, so the first answer can already say
"Queued — position N" or, ephemerally, why not. If the queue has not answered within the bot's
`ack_budget_seconds` (a burst of commands on a busy database), the interaction is deferred meanwhile and
the answer edits the loading message (a refusal then replaces it with an ephemeral follow-up).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot import messages
from bot.buttons import Action, ButtonId
from bot.discord.embeds import parameters_embed, queued_embed, rendering_embed
from bot.discord.replies import Reply, answer_privately
from bot.discord.views import progress_view
from jobs.errors import JobNotFound, NotAllowed, Refused
from jobs.models import Enqueued, EnqueueRequest, Job, Kind, MessageRefs, Platform, Status
from jobs.options import JobOptions
from jobs.validation import clean_prompt

if TYPE_CHECKING:
    from bot.discord.client import ImagineBot

    Interaction = discord.Interaction[ImagineBot]
else:
    Interaction = discord.Interaction

log = logging.getLogger(__name__)

HISTORY_COUNT = 10
DISCORD_WEB = "https://discord.com/channels"
KIND_OF_ACTION = {
    Action.REROLL: Kind.REROLL,
    Action.VARIATION: Kind.VARIATION,
    Action.PICK: Kind.PICK,
    Action.UPSCALE: Kind.UPSCALE,
}


# --- the commands ---------------------------------------------------------------------------------------


@app_commands.command()
@app_commands.describe(**messages.HELP_IMAGINE_OPTIONS)
@app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)
async def imagine(
    interaction: Interaction,
    prompt: str,
    images: app_commands.Range[int, 1, 9] = 4,
    seed: app_commands.Range[int, 0] | None = None,
    guidance: app_commands.Range[float, 0.0, 100.0] | None = None,
    temperature: app_commands.Range[float, 0.01, 10.0] | None = None,
    top_k: app_commands.Range[int, 1, 16384] | None = None,
) -> None:
    """Draw pictures from a prompt with DALL·E mini."""
    # Ranges tell Discord's client what to offer; the queue checks again (a raw API call skips the client).
    options: dict[str, Any] = {"images": images}
    for name, value in (
        ("seed", seed),
        ("guidance_scale", guidance),
        ("temperature", temperature),
        ("top_k", top_k),
    ):
        if value is not None:
            options[name] = value
    await submit(interaction, request_from(interaction, prompt=prompt, options=options))


@app_commands.command(name="queue")
@app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)
async def queue_command(interaction: Interaction) -> None:
    """How long the queue is, where your jobs are, and whether a generator is online."""
    await answer_privately(interaction, lambda: _queue_reply(interaction))


async def _queue_reply(interaction: Interaction) -> Reply:
    queue = interaction.client.queue
    depths = await queue.depth_by_guild(limit=1000)
    workers = await queue.workers_alive()
    lines = [
        messages.queue_depth(
            sum(d.queued_jobs for d in depths),
            sum(d.queued_images for d in depths),
            sum(d.running_jobs for d in depths),
            len(workers),
        )
    ]
    mine = await queue.jobs_for_user(
        Platform.DISCORD, str(interaction.user.id), statuses=(Status.QUEUED, Status.RUNNING)
    )
    for job in reversed(mine):
        position, eta = await queue.position(job.id)
        line = messages.status_line(job, position)
        if job.status is Status.QUEUED and eta is not None:
            line += " · ready " + discord.utils.format_dt(interaction.client.now() + eta, "R")
        lines.append(f"{line} — {_short(job.prompt)}")
    if not mine:
        lines.append(messages.queue_none_yours())
    return Reply("\n".join(lines))


@app_commands.command()
@app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)
async def history(interaction: Interaction) -> None:
    """Your recent /imagine jobs, with links to their pictures."""
    await answer_privately(interaction, lambda: _history_reply(interaction))


async def _history_reply(interaction: Interaction) -> Reply:
    jobs = await interaction.client.queue.jobs_for_user(
        Platform.DISCORD, str(interaction.user.id), limit=HISTORY_COUNT
    )
    if not jobs:
        return Reply(messages.history_empty())
    lines = []
    for job in jobs:
        line = f"{messages.status_line(job)} — {_short(job.prompt)}"
        if link := message_link(job):
            line += f" · [open]({link})"
        lines.append(line)
    return Reply(embed=discord.Embed(title="Your recent jobs", description="\n".join(lines)[:4096]))


@app_commands.command()
@app_commands.describe(**messages.HELP_CANCEL_OPTIONS)
@app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
@app_commands.allowed_installs(guilds=True, users=False)
async def cancel(interaction: Interaction, job: app_commands.Range[int, 1] | None = None) -> None:
    """Cancel one of your jobs that is waiting or being drawn."""

    async def work() -> Reply:
        job_id = job
        if job_id is None:
            mine = await interaction.client.queue.jobs_for_user(
                Platform.DISCORD, str(interaction.user.id), limit=1, statuses=(Status.QUEUED, Status.RUNNING)
            )
            if not mine:
                return Reply(messages.refused_nothing_to_cancel())
            job_id = mine[0].id
        return await cancel_reply(interaction, job_id)

    await answer_privately(interaction, work)


COMMANDS: tuple[app_commands.Command[Any, ..., Any], ...] = (imagine, queue_command, history, cancel)


# --- buttons --------------------------------------------------------------------------------------------


async def on_button(interaction: Interaction, button_id: ButtonId) -> None:
    """A click on a button under an /imagine message, whatever its age (routed by custom_id)."""
    if button_id.action is Action.INFO:
        await answer_privately(interaction, lambda: _parameters_reply(interaction, button_id.job_id))
    elif button_id.action is Action.CANCEL:
        await answer_privately(interaction, lambda: cancel_reply(interaction, button_id.job_id))
    else:
        request = request_from(
            interaction,
            prompt="",  # the queue takes the parent's prompt and options
            kind=KIND_OF_ACTION[button_id.action],
            parent_job_id=button_id.job_id,
            image_index=button_id.image_index,
        )
        if button_id.action is Action.UPSCALE and interaction.message is not None:
            # the result replies to the picked image's message; the click's own answer stays private
            extra = {**request.refs.extra, "reply_to_message_id": str(interaction.message.id)}
            request = replace(request, refs=replace(request.refs, extra=extra))
        await submit(interaction, request)


# --- shared steps -----------------------------------------------------------------------------------------


def request_from(
    interaction: Interaction,
    *,
    prompt: str,
    options: dict[str, Any] | None = None,
    kind: Kind = Kind.IMAGINE,
    parent_job_id: int | None = None,
    image_index: int | None = None,
) -> EnqueueRequest:
    """The queue request of an interaction, with what the poster needs to answer it later: the token
    (15 minutes), when it was made, the app id for the webhook routes and the upload size limit."""
    refs = MessageRefs(
        interaction_token=interaction.token,
        interaction_created_at=interaction.created_at,
        extra={
            "application_id": str(interaction.application_id),
            "attachment_size_limit": interaction.filesize_limit,
        },
    )
    return EnqueueRequest(
        platform=Platform.DISCORD,
        user_id=str(interaction.user.id),
        user_name=interaction.user.display_name,
        prompt=prompt,
        guild_id=str(interaction.guild_id or ""),
        channel_id=str(interaction.channel_id or ""),
        options=options or {},
        kind=kind,
        parent_job_id=parent_job_id,
        image_index=image_index,
        refs=refs,
    )


async def submit(interaction: Interaction, request: EnqueueRequest) -> None:
    """Enqueue and answer: the queued message (public, with cancel and parameters buttons) or the refusal
    (ephemeral). The generator's poster then edits that message through rendering to the grid."""
    bot = interaction.client
    try:
        check_request(bot, request)  # no database needed: bad prompts and options are refused at once
    except Refused as exc:
        await interaction.response.send_message(messages.refused(exc.reason), ephemeral=True)
        return
    # With every enqueue slot taken (a burst), this one would wait its turn: ack at once instead.
    budget = 0.0 if bot.enqueue_slots.locked() else bot.ack_budget_seconds
    enqueuing = asyncio.ensure_future(_enqueue(bot, request))
    done, _ = await asyncio.wait({enqueuing}, timeout=budget)
    if not done:  # the database is busy: ack now, answer by editing the loading message
        await interaction.response.defer(thinking=True)
    try:
        enqueued = await enqueuing
    except NoGenerator:
        await _ephemeral(interaction, messages.refused_no_worker())
        return
    except Refused as exc:
        await _ephemeral(interaction, messages.refused(exc.reason))
        return
    except Exception:
        log.exception("enqueue failed", extra={"action": "enqueue_error", "interaction_id": interaction.id})
        await _ephemeral(interaction, messages.failed_internal())
        return
    job = enqueued.job
    if job.status is Status.DONE:  # a pick renders nothing: it is posted within a second
        embed = rendering_embed(job.prompt, progress=1.0)
    else:
        embed = queued_embed(job.prompt, position=enqueued.position, eta=enqueued.eta, now=bot.now())
    if job.kind is not Kind.IMAGINE and job.parent_job_id is not None:
        embed.set_author(name=messages.enqueued_child(job.kind.value, job.parent_job_id))
    # Either way the answer is the interaction's original response: the poster edits "@original".
    if interaction.response.is_done():
        await interaction.edit_original_response(embed=embed, view=progress_view(job.id))
    else:
        # an upscale's picture comes as a reply to the clicked message: its progress is the clicker's alone
        private = job.kind is Kind.UPSCALE
        await interaction.response.send_message(embed=embed, view=progress_view(job.id), ephemeral=private)


def check_request(bot: ImagineBot, request: EnqueueRequest) -> None:
    """The checks of `Queue.enqueue` that need no database (the same functions, so the same words)."""
    if request.kind is Kind.IMAGINE:
        clean_prompt(request.prompt, max_length=bot.queue.limits.max_prompt_length)
        JobOptions.parse(request.options, models=bot.queue.limits.models)


class NoGenerator(Refused):
    """No generator has been seen within a lease: a job would wait unseen, so none is queued."""


async def _enqueue(bot: ImagineBot, request: EnqueueRequest) -> Enqueued:
    # A job nobody would draw is refused like bad input: nothing is written, the user is told why.
    async with bot.enqueue_slots:
        if not await bot.generators_online():
            raise NoGenerator(messages.refused_no_worker())
        return await bot.queue.enqueue(request)


async def _parameters_reply(interaction: Interaction, job_id: int) -> Reply:
    try:
        queue = interaction.client.queue
        return Reply(embed=parameters_embed(await queue.get_job(job_id), await queue.image_scores(job_id)))
    except JobNotFound:
        return Reply(messages.refused_job_not_found(job_id))


async def cancel_reply(interaction: Interaction, job_id: int) -> Reply:
    """Cancel the job for the one who asked for it or an admin; the answer says what happened."""
    from bot.discord.admin import is_admin  # admin rights are the admin module's question

    queue = interaction.client.queue
    try:
        job = await queue.get_job(job_id)
        admin = job.user_id != str(interaction.user.id) and await is_admin(interaction)
        job = await queue.cancel(job_id, str(interaction.user.id), is_admin=admin)
    except JobNotFound:
        return Reply(messages.refused_job_not_found(job_id))
    except NotAllowed:
        return Reply(messages.refused_not_yours(job_id))
    return Reply(messages.cancel_answer(job))


async def _ephemeral(interaction: Interaction, text: str) -> None:
    if interaction.response.is_done():
        # Deferred publicly while the queue was busy: take the loading message away and answer privately
        # (a follow-up after the original is gone is a new message, so its ephemeral flag holds).
        await interaction.delete_original_response()
        await interaction.followup.send(text, ephemeral=True)
    else:
        await interaction.response.send_message(text, ephemeral=True)


def message_link(job: Job) -> str | None:
    """A jump link to the job's message: the grid once posted, else its queued message."""
    message_id = job.refs.final_message_id or job.refs.placeholder_message_id
    if not message_id or not job.guild_id:
        return None
    channel_id = job.refs.extra.get("final_channel_id") or job.channel_id
    return f"{DISCORD_WEB}/{job.guild_id}/{channel_id}/{message_id}"


def _short(prompt: str, limit: int = 60) -> str:
    text = discord.utils.escape_markdown(" ".join(prompt.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
