"""A signed-in person's own pictures, and the pages of the servers they administer.

    GET  /gallery                        your finished jobs with stored pictures: the grid and each
                                         image (each downloadable), prompt, options, link to the chat
    GET  /gallery/{job}/{index}.png      a picture, only to its owner, an admin of its server, the operator
    POST /gallery/{job}/delete           forget your own job's pictures (the usage row stays)
    GET  /guild/{platform}/{guild}       a server's usage, recent prompts and bans: its admins, the operator
    POST /guild/{platform}/{guild}/ban   ban a user from /imagine in that server (unban: …/unban)

Someone else's picture answers 404 (whether it exists is not theirs to know); another server's page 403.
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from bot.web import texts
from bot.web.auth import Session
from bot.web.keys import SESSION, queue_of
from bot.web.render import render
from jobs.errors import JobNotFound
from jobs.models import Job, JobSearch, Status, UsageFilter

routes = web.RouteTableDef()

GALLERY_SIZE = 60
DISCORD_WEB = "https://discord.com/channels"
SLACK_DEEP_LINK = "slack://channel"


def may_see(session: Session, job: Job) -> bool:
    if session.is_operator:
        return True
    return (
        session.platform_user == (job.platform, job.user_id)
        or grant_of(job.platform, job.guild_id) in session.grants
    )


def grant_of(platform: str, guild_id: str) -> str:
    return f"{platform}:{guild_id}"


def chat_link(job: Job) -> str | None:
    """Where the result was posted (None until it is), from the message refs its poster recorded.

    Discord: the message's own link, in the channel the poster says it used (`final_channel_id`; a DM
    is `@me`). Slack: the https permalink needs the workspace's subdomain, which no stored ref holds
    (installs keep the team id and name; `chat.getPermalink` would be a Web API call per card), so it
    is Slack's documented deep link to the channel the grid was shared in, by team and channel id.
    """
    message = job.refs.final_message_id
    if not message:
        return None
    if job.platform == "discord":
        channel = job.refs.extra.get("final_channel_id") or job.channel_id
        return f"{DISCORD_WEB}/{job.guild_id or '@me'}/{channel}/{message}"
    if job.platform == "slack" and job.guild_id and job.channel_id:
        return f"{SLACK_DEEP_LINK}?{urlencode({'team': job.guild_id, 'id': job.channel_id})}"
    return None


@routes.get("/gallery")
async def gallery_page(request: web.Request) -> web.Response:
    session = request[SESSION]
    owner = session.platform_user
    if owner is None:
        raise web.HTTPFound("/history")  # the operator's view of everyone's pictures
    queue = queue_of(request)
    # A job whose pictures were deleted (by its owner, or by retention) has no card: nothing to show.
    jobs = await queue.jobs_for_user(*owner, limit=GALLERY_SIZE, statuses=[Status.DONE], with_pictures=True)
    pictures = await queue.image_indices_of([job.id for job in jobs])
    guilds = [
        (platform, guild_id, texts.space_word(platform)) for platform, guild_id in _split(session.grants)
    ]
    return render(
        request,
        "gallery.html",
        jobs=[job for job in jobs if job.id in pictures],  # deleted between the two reads
        pictures=pictures,
        guilds=guilds,
        user_name=session.user_name,
        link=chat_link,
    )


def _split(grants: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(platform, guild_id) for platform, _, guild_id in (grant.partition(":") for grant in grants)]


async def _visible_job(request: web.Request) -> Job:
    try:
        job = await queue_of(request).get_job(int(request.match_info["job_id"]))
    except JobNotFound:
        raise web.HTTPNotFound(text=texts.ERROR_PICTURE_NOT_STORED) from None
    if not may_see(request[SESSION], job):
        raise web.HTTPNotFound(text=texts.ERROR_PICTURE_NOT_STORED)
    return job


@routes.get(r"/gallery/{job_id:\d+}/{index:-?\d+}.png")
async def picture(request: web.Request) -> web.Response:
    job = await _visible_job(request)
    try:
        image = await queue_of(request).image(job.id, int(request.match_info["index"]))
    except JobNotFound:
        raise web.HTTPNotFound(text=texts.ERROR_PICTURE_NOT_STORED) from None
    index = int(request.match_info["index"])
    filename = f"imagine-{job.id}-{'grid' if index < 0 else index + 1}.png"
    return web.Response(
        body=image.png,
        content_type="image/png",
        headers={
            "Cache-Control": "private, max-age=3600",
            "Content-Disposition": f'inline; filename="{filename}"',
        },
    )


@routes.post(r"/gallery/{job_id:\d+}/delete")
async def delete_own(request: web.Request) -> web.Response:
    job = await _visible_job(request)
    session = request[SESSION]
    if session.platform_user != (job.platform, job.user_id):
        raise web.HTTPForbidden(text=texts.REFUSED_NOT_YOURS)
    count = await queue_of(request).delete_images(job.id)
    session.flash("ok", texts.pictures_deleted(job.id, count))
    raise web.HTTPFound("/gallery")


def _granted_server(request: web.Request) -> tuple[str, str]:
    platform, guild_id = request.match_info["platform"], request.match_info["guild_id"]
    session = request[SESSION]
    if not session.is_operator and grant_of(platform, guild_id) not in session.grants:
        raise web.HTTPForbidden(text=texts.REFUSED_NOT_YOUR_SERVER)
    return platform, guild_id


@routes.post("/guild/{platform}/{guild_id}/{action:ban|unban}")
async def moderate(request: web.Request) -> web.Response:
    platform, guild_id = _granted_server(request)
    form = await request.post()
    user_id = str(form.get("user_id", "")).strip()
    session = request[SESSION]
    if not user_id:
        session.flash("error", texts.error_not_banned("say whose user id"))
    elif request.match_info["action"] == "ban":
        reason = str(form.get("reason", "")).strip()
        await queue_of(request).ban(
            platform, user_id, guild_id=guild_id, reason=reason, banned_by=session.account
        )
        session.flash("ok", texts.banned(platform, user_id, guild_id))
    elif await queue_of(request).unban(platform, user_id, guild_id=guild_id):
        session.flash("ok", texts.unbanned(platform, user_id))
    else:
        session.flash("error", texts.error_was_not_banned(platform, user_id))
    raise web.HTTPFound(f"/guild/{platform}/{guild_id}")


@routes.get("/guild/{platform}/{guild_id}")
async def guild_page(request: web.Request) -> web.Response:
    platform, guild_id = _granted_server(request)
    queue = queue_of(request)
    usage = await queue.usage(by="user", filters=UsageFilter(platform=platform, guild_id=guild_id))
    recent, total = await queue.search_jobs(JobSearch(platform=platform, guild_id=guild_id, limit=20))
    bans = await queue.bans(platform, guild_id)
    return render(
        request,
        "guild.html",
        platform=platform,
        guild_id=guild_id,
        place=texts.space_word(platform),
        usage=usage,
        recent=recent,
        total=total,
        bans=bans,
    )
