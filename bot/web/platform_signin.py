"""Sign in with Discord (OAuth2 authorization code, scopes `identify guilds`) and Sign in with Slack
(OpenID Connect, scopes `openid profile`), both by authlib.

    GET /login/discord            a state in an HttpOnly cookie, then Discord's authorize page
    GET /login/discord/callback   the state checked, the code exchanged for a token (authlib), the user
                                  and their guilds read, a session started:
                                  account "discord:<user id>", grants "discord:<guild id>" for every guild
                                  where they have Manage Server (or Administrator) and the bot is installed

    GET /login/slack, /login/slack/callback   the same with Slack (OpenID Connect: Slack's discovery
                                  document and keys, the id_token's signature, issuer, audience, nonce
                                  and expiry checked by authlib): account "slack:<user id>", grant
                                  "slack:<team id>" for a workspace admin or owner where the app is installed

A platform user sees their own pictures (bot/web/gallery.py) and the pages of the servers they were
granted; the operator's password account sees everything. The grants are read at sign-in: a user who
loses Manage Server keeps the pages until the session ends (sign out, or `session_seconds`).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

import httpx2
from aiohttp import web
from authlib.integrations.base_client import BaseApp
from authlib.integrations.base_client.async_app import AsyncOAuth2Mixin
from authlib.integrations.base_client.async_openid import AsyncOpenIDMixin
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc.errors import JoseError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.web import texts
from bot.web.keys import CONFIG, QUEUE, SESSION_COOKIE, SESSIONS, SETTINGS
from jobs.slack_installs import SlackInstallations

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

STATE_COOKIE = "imagine_oauth_state"
STATE_SECONDS = 600
SCOPES = "identify guilds"
MANAGE_GUILD = 1 << 5
ADMINISTRATOR = 1 << 3
CALLBACK_PATH = "/login/discord/callback"


def discord_sign_in_enabled(settings: Any) -> bool:
    return bool(
        getattr(settings, "discord_application_id", None) and getattr(settings, "discord_client_secret", None)
    )


def _web_base(api_url: str) -> str:
    """https://discord.com/api/v10 → https://discord.com (the authorize page is not under /api)."""
    base, _, _ = api_url.rstrip("/").partition("/api")
    return base


def _client(request: web.Request) -> AsyncOAuth2Client:
    settings: Any = request.app[SETTINGS]
    secret = settings.discord_client_secret.get_secret_value()
    return AsyncOAuth2Client(
        client_id=str(settings.discord_application_id),
        client_secret=secret,
        scope=SCOPES,
        redirect_uri=str(request.url.origin()) + CALLBACK_PATH,
        timeout=10.0,
    )


@routes.get("/login/discord")
async def start(request: web.Request) -> web.StreamResponse:
    if not discord_sign_in_enabled(request.app[SETTINGS]):
        raise web.HTTPNotFound(text=texts.DISCORD_SIGN_IN_OFF)
    settings: Any = request.app[SETTINGS]
    state = secrets.token_urlsafe(24)
    async with _client(request) as client:
        url, _ = client.create_authorization_url(
            _web_base(settings.discord_api_url) + "/oauth2/authorize", state=state
        )
    response = web.HTTPFound(url)
    _set_state_cookie(request, response, STATE_COOKIE, state, CALLBACK_PATH)
    raise response


def _platform_failed(platform: str, exc: Exception) -> web.HTTPBadGateway:
    """The platform did not answer as OAuth says (down, refused the code, odd JSON): logged, then a 502."""
    log.warning(
        "Sign in with %s failed: %s",
        platform,
        exc,
        extra={"action": f"dashboard_{platform.lower()}_sign_in_failed"},
    )
    return web.HTTPBadGateway(text=texts.refused_platform_sign_in(platform, type(exc).__name__))


@routes.get(CALLBACK_PATH)
async def callback(request: web.Request) -> web.StreamResponse:
    settings: Any = request.app[SETTINGS]
    if not discord_sign_in_enabled(settings):
        raise web.HTTPNotFound(text=texts.DISCORD_SIGN_IN_OFF)
    given = _checked_state(request, STATE_COOKIE)
    api = settings.discord_api_url.rstrip("/")
    try:
        async with _client(request) as client:
            await client.fetch_token(api + "/oauth2/token", code=request.query["code"], state=given)
            user = (await client.get(api + "/users/@me")).raise_for_status().json()
            guilds = (await client.get(api + "/users/@me/guilds")).raise_for_status().json()
        installed = await _bot_guilds(api, settings)
    except (httpx2.HTTPError, ValueError, KeyError) as exc:
        raise _platform_failed("Discord", exc) from None
    managed = {
        str(guild["id"])
        for guild in guilds
        if int(guild.get("permissions", 0)) & (MANAGE_GUILD | ADMINISTRATOR) or guild.get("owner")
    }
    grants = tuple(sorted(f"discord:{guild_id}" for guild_id in managed & installed))
    name = str(user.get("global_name") or user.get("username") or user["id"])
    account = f"discord:{user['id']}"
    return await _signed_in(request, account, name, grants, (STATE_COOKIE,), CALLBACK_PATH)


def _set_state_cookie(
    request: web.Request, response: web.StreamResponse, name: str, state: str, path: str
) -> None:
    # Lax, not Strict: the browser must send it on the redirect back from the platform (a top-level GET).
    response.set_cookie(
        name,
        state,
        httponly=True,
        samesite="Lax",
        secure=request.app[CONFIG].secure_cookie or request.secure,
        path=path,
        max_age=STATE_SECONDS,
    )


def _checked_state(request: web.Request, cookie: str) -> str:
    """The callback's state, refused unless it is the one this browser was given (and a code came)."""
    expected = request.cookies.get(cookie, "")
    given = request.query.get("state", "")
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        raise web.HTTPForbidden(text=texts.REFUSED_OAUTH_STATE)
    if "code" not in request.query:
        raise web.HTTPForbidden(text=texts.refused_sign_in(request.query.get("error", "no code")))
    return given


async def _signed_in(
    request: web.Request,
    account: str,
    name: str,
    grants: tuple[str, ...],
    state_cookies: tuple[str, ...],
    path: str,
) -> web.StreamResponse:
    _session, cookie = await request.app[SESSIONS].start(account, user_name=name, grants=grants)
    log.info(
        "%s signed in",
        account,
        extra={"action": "dashboard_platform_signed_in", "account": account, "grants": len(grants)},
    )
    response = web.HTTPFound("/gallery")
    config = request.app[CONFIG]
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="Lax",  # arrives on the redirect from the platform; every POST still needs the CSRF token
        secure=config.secure_cookie or request.secure,
        path="/",
        max_age=int(config.session_seconds),
    )
    for cookie in state_cookies:
        response.del_cookie(cookie, path=path)
    raise response


async def _bot_guilds(api: str, settings: Any) -> set[str]:
    """The guilds the bot is in (its own token), where a guild admin's grant counts; none without it."""
    if settings.discord_token is None:
        return set()
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}"}
    async with httpx2.AsyncClient(timeout=10.0) as http:
        answer = (await http.get(api + "/users/@me/guilds", headers=headers)).raise_for_status()
    return {str(guild["id"]) for guild in answer.json()}


# --- Sign in with Slack (OpenID Connect) -----------------------------------------------------------------

SLACK_CALLBACK_PATH = "/login/slack/callback"
SLACK_STATE_COOKIE = "imagine_slack_state"
SLACK_NONCE_COOKIE = "imagine_slack_nonce"
SLACK_SCOPES = "openid profile"


def slack_sign_in_enabled(settings: Any) -> bool:
    return bool(getattr(settings, "slack_oauth", False))


class SlackOpenID(AsyncOAuth2Mixin, AsyncOpenIDMixin, BaseApp):  # type: ignore[misc]
    """authlib's own OpenID Connect client, composed the way its Starlette integration composes its
    own (authlib has none for aiohttp): discovery, the JWKS, and `parse_id_token`, which checks the
    id_token's signature, issuer, audience (our client id), nonce and expiry."""

    client_cls = AsyncOAuth2Client


def _slack_openid(request: web.Request) -> SlackOpenID:
    settings: Any = request.app[SETTINGS]
    web_base = settings.slack_api_url.rstrip("/").removesuffix("/api")
    return SlackOpenID(
        framework=None,
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret.get_secret_value(),
        server_metadata_url=web_base + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": SLACK_SCOPES,
            "token_endpoint_auth_method": "client_secret_post",  # Slack reads the credentials from the form
            "timeout": 10.0,
        },
    )


def _slack_redirect_uri(request: web.Request) -> str:
    return str(request.url.origin()) + SLACK_CALLBACK_PATH


@routes.get("/login/slack")
async def start_slack(request: web.Request) -> web.StreamResponse:
    settings: Any = request.app[SETTINGS]
    if not slack_sign_in_enabled(settings):
        raise web.HTTPNotFound(text=texts.SLACK_SIGN_IN_OFF)
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(16)
    try:
        started = await _slack_openid(request).create_authorization_url(
            redirect_uri=_slack_redirect_uri(request), state=state, nonce=nonce
        )
    except (httpx2.HTTPError, ValueError, KeyError, RuntimeError) as exc:  # discovery failed
        raise _platform_failed("Slack", exc) from None
    response = web.HTTPFound(started["url"])
    _set_state_cookie(request, response, SLACK_STATE_COOKIE, state, SLACK_CALLBACK_PATH)
    # The nonce the id_token must carry, bound to this browser like the state.
    _set_state_cookie(request, response, SLACK_NONCE_COOKIE, nonce, SLACK_CALLBACK_PATH)
    raise response


@routes.get(SLACK_CALLBACK_PATH)
async def slack_callback(request: web.Request) -> web.StreamResponse:
    settings: Any = request.app[SETTINGS]
    if not slack_sign_in_enabled(settings):
        raise web.HTTPNotFound(text=texts.SLACK_SIGN_IN_OFF)
    given = _checked_state(request, SLACK_STATE_COOKIE)
    nonce = request.cookies.get(SLACK_NONCE_COOKIE, "")
    if not nonce:
        raise web.HTTPForbidden(text=texts.REFUSED_OAUTH_STATE)
    openid = _slack_openid(request)
    try:
        token = await openid.fetch_access_token(
            redirect_uri=_slack_redirect_uri(request), code=request.query["code"], state=given
        )
        if "id_token" not in token:
            raise KeyError("id_token")
        issuer = (await openid.load_server_metadata())["issuer"]
        # Options name the audience too: authlib's default lets a token for another client through when
        # its `azp` names ours.
        only = {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": openid.client_id},
        }
        claims = await openid.parse_id_token(token, nonce=nonce, claims_options=only)
    except JoseError as exc:  # a forged, replayed or expired id_token: nobody is signed in
        log.warning(
            "Sign in with Slack: id_token refused: %s",
            exc,
            extra={"action": "dashboard_slack_id_token_refused"},
        )
        problem = exc.description or exc.error.replace("_", " ")  # joserfc's words: "Invalid claim: 'nonce'"
        raise web.HTTPForbidden(text=texts.refused_slack_id_token(problem)) from None
    except (httpx2.HTTPError, ValueError, KeyError, RuntimeError) as exc:
        raise _platform_failed("Slack", exc) from None
    try:
        user_id = str(claims["https://slack.com/user_id"])
        team_id = str(claims["https://slack.com/team_id"])
        is_admin = await _slack_workspace_admin(request, settings, team_id=team_id, user_id=user_id)
    except (KeyError, SlackApiError) as exc:
        raise _platform_failed("Slack", exc) from None
    grants = (f"slack:{team_id}",) if is_admin else ()
    name = str(claims.get("name") or user_id)
    cookies = (SLACK_STATE_COOKIE, SLACK_NONCE_COOKIE)
    return await _signed_in(request, f"slack:{user_id}", name, grants, cookies, SLACK_CALLBACK_PATH)


async def _slack_workspace_admin(request: web.Request, settings: Any, *, team_id: str, user_id: str) -> bool:
    """A workspace admin or owner, asked with the bot token of that workspace (installed by OAuth); a
    workspace the app is not installed in grants nothing."""
    installations = SlackInstallations.of_queue(request.app[QUEUE], client_id=str(settings.slack_client_id))
    token = await installations.bot_token(team_id=team_id, enterprise_id=None)
    if token is None:
        return False
    client = AsyncWebClient(token=token, base_url=settings.slack_api_url)
    user = (await client.users_info(user=user_id))["user"]
    return bool(user.get("is_admin") or user.get("is_owner"))
