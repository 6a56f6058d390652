"""Installs by OAuth ("Add to Slack"): Bolt's `AsyncOAuthFlow` with slack_sdk's stores in our database.

    GET /slack/install          sets the state cookie and redirects to Slack's authorize page
    GET /slack/oauth_redirect   Slack sends the admin back here: the state is checked (the cookie and the
                                one-time row), the code exchanged (oauth.v2.access) and the workspace's
                                bot token saved (jobs/slack_installs.py)

Then every request is authorized by its workspace's installation (`team_id`, and `enterprise_id` on
Enterprise Grid): Bolt hands each listener a client with that workspace's bot token. `app_uninstalled`
and `tokens_revoked` delete the tokens (Bolt's own listeners); the generator's poster then finds none and
marks that workspace's deliveries undeliverable with the reason (bot/slack/poster.py).

Both routes are on the HTTP-mode server beside /slack/events. The flow needs a public HTTPS URL for
the redirect, so OAuth installs are an HTTP-mode feature; one workspace with one bot token
(IMAGINE_SLACK_BOT_TOKEN) works as before in either mode.
"""

from __future__ import annotations

from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.manifest import BOT_SCOPES, REDIRECT_PATH
from jobs.settings import Settings
from jobs.slack_installs import STATE_EXPIRATION_SECONDS, SlackInstallations

INSTALL_PATH = "/slack/install"


def authorization_url(api_url: str) -> str:
    """Slack's authorize page beside its Web API (https://slack.com/api/ → https://slack.com/oauth/v2/…)."""
    return api_url.rstrip("/").removesuffix("/api") + "/oauth/v2/authorize"


def install_url_beside(redirect_uri: str) -> str:
    """The public "Add to Slack" link, on the same host as the redirect URL Slack knows."""
    return redirect_uri.removesuffix(REDIRECT_PATH) + INSTALL_PATH


def oauth_flow(
    settings: Settings, installations: SlackInstallations, client: AsyncWebClient
) -> AsyncOAuthFlow:
    """The install flow for `settings`' app credentials; `client` (no token) calls oauth.v2.access."""
    assert settings.slack_client_id and settings.slack_client_secret  # settings.slack_oauth
    return AsyncOAuthFlow(
        client=client,
        settings=AsyncOAuthSettings(
            client_id=settings.slack_client_id,
            client_secret=settings.slack_client_secret.get_secret_value(),
            scopes=sorted(BOT_SCOPES),
            redirect_uri=settings.slack_redirect_uri,
            install_path=INSTALL_PATH,
            # "Add to Slack" links straight to /slack/install: it redirects, no page of Bolt's in between
            install_page_rendering_enabled=False,
            redirect_uri_path=REDIRECT_PATH,
            authorization_url=authorization_url(settings.slack_api_url),
            installation_store=installations.installation_store,
            installation_store_bot_only=True,
            state_store=installations.state_store,
            state_expiration_seconds=STATE_EXPIRATION_SECONDS,
        ),
    )
