"""The "Add to Discord" link: the OAuth2 install URL with exactly the scopes and permissions the bot uses.

    install_url(application_id)           https://discord.com/oauth2/authorize?client_id=…&scope=bot+…
    await application_id(settings)        IMAGINE_DISCORD_APPLICATION_ID, or asked from Discord (bot token)

The bot is installed to servers only (`integration_type=0`): its results are posted in the channel once the
15-minute interaction token has expired, which a user install (a bot that is not in the server) cannot do,
and the server's own rules (channels, bans, quotas) exist only where the bot is installed. Its commands
declare the same (`allowed_installs(guilds=True, users=False)` in bot/discord/commands.py and admin.py).
"""

from __future__ import annotations

import aiohttp
import discord

from bot.discord.app import use_api_url
from jobs.errors import SettingsError
from jobs.settings import Settings

# Each permission, and why the bot needs it (docs/discord.md lists the same).
PERMISSIONS = discord.Permissions(
    view_channel=True,  # see the channel a command came from
    send_messages=True,  # post the grid once the interaction token has expired
    send_messages_in_threads=True,  # the same, when /imagine was used in a thread
    embed_links=True,  # the queued / rendering / done embeds
    attach_files=True,  # the grid PNG
)
SCOPES = ("bot", "applications.commands")
GUILD_INSTALL = 0  # Discord's integration type of a server install (1 would be a user install)


def install_url(application_id: int) -> str:
    """The URL a server admin opens to add the bot (discord.py builds it; it has no integration_type)."""
    url = discord.utils.oauth_url(application_id, permissions=PERMISSIONS, scopes=SCOPES)
    return f"{url}&integration_type={GUILD_INSTALL}"


async def application_id(settings: Settings) -> int:
    """The application's id: the setting, else Discord's answer for the bot token (one REST call)."""
    if settings.discord_application_id is not None:
        return settings.discord_application_id
    if settings.discord_token is None:
        raise SettingsError(
            "set IMAGINE_DISCORD_APPLICATION_ID (General Information → Application ID) "
            "or IMAGINE_DISCORD_TOKEN to make the install link"
        )
    use_api_url(settings.discord_api_url)
    client = discord.Client(intents=discord.Intents(guilds=True))  # REST only: it never connects
    try:
        await client.login(settings.discord_token.get_secret_value())
        info = await client.application_info()
    except discord.LoginFailure:
        raise SettingsError(
            "IMAGINE_DISCORD_TOKEN was refused by Discord: reset it on the Bot page"
        ) from None
    except (aiohttp.ClientError, OSError, discord.HTTPException) as exc:
        raise SettingsError(
            f"Discord did not answer at {settings.discord_api_url} ({type(exc).__name__}); "
            "set IMAGINE_DISCORD_APPLICATION_ID to make the link without asking"
        ) from None
    finally:
        await client.close()
    return info.id
