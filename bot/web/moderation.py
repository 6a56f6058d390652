"""Moderation: bans, guild/workspace caps, quotas, allowed channels and blocklists, cancelling any job.

Every change goes through `jobs.queue.Queue` — `ban`, `unban`, `update_settings`, `cancel(is_admin=True)` —
the same calls the chat admin commands make, so a ban here refuses the user's next /imagine everywhere.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.web import forms, texts
from bot.web.history import ADMIN_ID, cancel_as_admin
from bot.web.keys import queue_of
from bot.web.render import render
from jobs.models import Platform, SpaceSettings

routes = web.RouteTableDef()

PLATFORMS = tuple(p.value for p in Platform)


def _platform(form: Any) -> str:
    platform = forms.text(form, "platform")
    if platform not in PLATFORMS:
        raise ValueError(f"choose a platform: {', '.join(PLATFORMS)}")
    return platform


@routes.get("/moderation")
async def moderation_page(request: web.Request) -> web.Response:
    queue = queue_of(request)
    platform = forms.text(request.query, "platform")
    guild_id = forms.text(request.query, "guild")
    editing = await queue.get_settings(platform, guild_id) if platform in PLATFORMS else None
    return render(
        request,
        "moderation.html",
        bans=await queue.all_bans(),
        spaces=await queue.all_spaces(),
        editing=editing,
        platforms=PLATFORMS,
        limits=queue.limits,
    )


@routes.post("/moderation/ban")
async def ban(request: web.Request) -> web.Response:
    form = await request.post()
    user_id = forms.text(form, "user_id", limit=64)
    guild_id = forms.text(form, "guild_id", limit=64)
    try:
        platform = _platform(form)
        if not user_id:
            raise ValueError("enter the user id to ban")
    except ValueError as exc:
        raise forms.back(request, "error", texts.error_not_banned(str(exc)), to="/moderation") from None
    await queue_of(request).ban(
        platform, user_id, guild_id=guild_id, reason=forms.text(form, "reason", limit=500), banned_by=ADMIN_ID
    )
    raise forms.back(request, "ok", texts.banned(platform, user_id, guild_id), to="/moderation")


@routes.post("/moderation/unban")
async def unban(request: web.Request) -> web.Response:
    form = await request.post()
    user_id = forms.text(form, "user_id", limit=64)
    try:
        platform = _platform(form)
    except ValueError as exc:
        raise forms.back(request, "error", texts.error_not_unbanned(str(exc)), to="/moderation") from None
    removed = await queue_of(request).unban(
        platform, user_id, guild_id=forms.text(form, "guild_id", limit=64)
    )
    if removed:
        raise forms.back(request, "ok", texts.unbanned(platform, user_id), to="/moderation")
    raise forms.back(request, "error", texts.error_was_not_banned(platform, user_id), to="/moderation")


@routes.post("/moderation/space")
async def save_space(request: web.Request) -> web.Response:
    """Save one guild's/workspace's caps, quota, allowed channels, blocklist and admin ids."""
    form = await request.post()
    guild_id = forms.text(form, "guild_id", limit=64)
    try:
        platform = _platform(form)
        changes: dict[str, Any] = {
            "max_running_per_user": forms.optional_integer(form, "max_running_per_user", low=1),
            "max_queued_per_user": forms.optional_integer(form, "max_queued_per_user", low=1),
            "daily_quota_images": forms.optional_integer(form, "daily_quota_images", low=0),
            "candidates_per_image": forms.optional_integer(form, "candidates_per_image", low=1, high=4),
            "allowed_channels": forms.word_list(form, "allowed_channels"),
            "blocked_words": forms.word_list(form, "blocked_words"),
            "admin_role_ids": forms.word_list(form, "admin_role_ids"),
            "admin_user_ids": forms.word_list(form, "admin_user_ids"),
        }
    except ValueError as exc:
        raise forms.back(request, "error", texts.error_space_not_saved(str(exc)), to="/moderation") from None
    assert set(changes) == set(SpaceSettings.EDITABLE)
    await queue_of(request).update_settings(platform, guild_id, **changes)
    raise forms.back(
        request,
        "ok",
        texts.space_saved(platform, guild_id),
        to=f"/moderation?{urlencode({'platform': platform, 'guild': guild_id})}#space",
    )


@routes.post("/moderation/cancel")
async def cancel(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        job_id = forms.optional_integer(form, "job_id", low=1)
    except ValueError as exc:
        raise forms.back(request, "error", texts.error_not_cancelled(str(exc)), to="/moderation") from None
    if job_id is None:
        raise forms.back(request, "error", texts.error_not_cancelled("enter a job number"), to="/moderation")
    raise forms.back(request, *await cancel_as_admin(request, job_id), to="/moderation")
