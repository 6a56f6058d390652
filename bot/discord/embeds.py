"""The embeds of an /imagine message in Discord, one per state of the job: queued, rendering, done, failed.

The message made at enqueue time is edited through these states (docs/design.md, "A job's life"). Prompts are
shown as the user typed them: markdown escaped, so `**x**` or `<@123>` reads as text. Every string is cut
to Discord's embed limits (description 4096,
field value 1024, footer 2048, 6000 in all).
"""

from __future__ import annotations

import datetime

import discord

from bot import messages
from jobs.models import Job

MAX_DESCRIPTION_LENGTH = 4096
MAX_FIELD_VALUE_LENGTH = 1024
MAX_FOOTER_LENGTH = 2048
PROGRESS_BAR_WIDTH = 12  # cells

GRID_FILENAME = "grid.png"

QUEUED_COLOR = discord.Color.light_grey()
RENDERING_COLOR = discord.Color.blurple()
DONE_COLOR = discord.Color.green()
FAILED_COLOR = discord.Color.red()
CANCELLED_COLOR = discord.Color.dark_grey()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def prompt_text(prompt: str) -> str:
    """The prompt as an embed description: markdown escaped, within the length limit."""
    return _cut(discord.utils.escape_markdown(prompt), MAX_DESCRIPTION_LENGTH)


def progress_bar(fraction: float, *, width: int = PROGRESS_BAR_WIDTH) -> str:
    """`▰▰▰▱▱▱ 50 %` for a fraction in [0, 1] (clamped)."""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * width)
    return "▰" * filled + "▱" * (width - filled) + f" {round(fraction * 100)} %"


def queued_embed(
    prompt: str, *, position: int, eta: datetime.timedelta | None, now: datetime.datetime
) -> discord.Embed:
    """Queued: the position in the queue and, when the queue can tell, a relative ETA."""
    embed = discord.Embed(title="Queued", description=prompt_text(prompt), color=QUEUED_COLOR)
    embed.add_field(name="Position", value=str(position))
    eta_text = "unknown yet" if eta is None else discord.utils.format_dt(now + eta, "R")
    embed.add_field(name="Ready", value=eta_text)
    return embed


def rendering_embed(prompt: str, *, progress: float) -> discord.Embed:
    """Rendering: a progress bar with its percentage."""
    embed = discord.Embed(title="Rendering", description=prompt_text(prompt), color=RENDERING_COLOR)
    embed.add_field(name="Progress", value=progress_bar(progress), inline=False)
    return embed


def parameters_embed(job: Job, scores: dict[int, float | None] | None = None) -> discord.Embed:
    """The job's prompt and options, and each picture's CLIP score (the ℹ️ button's ephemeral answer)."""
    embed = discord.Embed(title=f"Job #{job.id}", description=prompt_text(job.prompt), color=DONE_COLOR)
    _add_option_fields(embed, job)
    ranked = messages.scores_text(scores or {})
    if ranked:
        embed.add_field(name=messages.SCORES_LABEL, value=_cut(ranked, MAX_FIELD_VALUE_LENGTH), inline=False)
    return embed


def done_embed(job: Job, *, grid_filename: str = GRID_FILENAME) -> discord.Embed:
    """Done: the grid (the attachment named `grid_filename`), the prompt and the options to reproduce it."""
    embed = discord.Embed(title="Done", description=prompt_text(job.prompt), color=DONE_COLOR)
    _add_option_fields(embed, job)
    embed.set_image(url=f"attachment://{grid_filename}")
    footer = f"Job #{job.id}"
    if job.render_time is not None:
        footer += f" · rendered in {job.render_time.total_seconds():.1f} s"
    embed.set_footer(text=_cut(footer, MAX_FOOTER_LENGTH))
    return embed


def failed_embed(job: Job, *, reason: str | None = None) -> discord.Embed:
    """Failed: the reason in the words the queue recorded for users (or `reason`, if given)."""
    reason = reason or job.error or "The job failed."
    embed = discord.Embed(title="Failed", description=prompt_text(job.prompt), color=FAILED_COLOR)
    embed.add_field(name="Why", value=_cut(reason, MAX_FIELD_VALUE_LENGTH), inline=False)
    embed.set_footer(text=f"Job #{job.id}")
    return embed


def cancelled_embed(job: Job) -> discord.Embed:
    """Cancelled: by the requester or an admin, while it waited or was drawn."""
    embed = discord.Embed(title="Cancelled", description=prompt_text(job.prompt), color=CANCELLED_COLOR)
    embed.set_footer(text=f"Job #{job.id}")
    return embed


def _add_option_fields(embed: discord.Embed, job: Job) -> None:
    # a field value may not be empty: "default" stands for the generator's configured model
    for label, value in job.options.shown():
        embed.add_field(name=label, value=_cut(value, MAX_FIELD_VALUE_LENGTH))
