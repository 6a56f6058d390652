"""`imagine discord-invite`: the install URL with exactly the scopes and permissions the bot uses, the
application id asked from (the fake) Discord with the bot token or taken from the setting."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import discord
import pytest

from bot.cli import main
from tests.fakes.discord import FakeDiscord

DOCS = Path(__file__).resolve().parents[2] / "docs" / "discord.md"


async def invite(capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["discord-invite"])  # main runs its own loop; the fake runs on ours
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_discord: FakeDiscord) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)  # no developer .env is read
    monkeypatch.setenv("IMAGINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("IMAGINE_DISCORD_API_URL", fake_discord.api_base)
    return monkeypatch


async def test_the_invite_asks_discord_for_the_application_and_names_what_the_bot_needs(
    env: pytest.MonkeyPatch, fake_discord: FakeDiscord, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("IMAGINE_DISCORD_TOKEN", fake_discord.token)
    code, out, err = await invite(capsys)
    assert code == 0, err
    url = urlsplit(out.strip())
    assert (url.scheme, url.netloc, url.path) == ("https", "discord.com", "/oauth2/authorize")
    query = {key: values for key, values in parse_qs(url.query).items()}
    assert query["client_id"] == [str(fake_discord.application_id)]
    assert query["scope"] == ["bot applications.commands"]
    assert query["integration_type"] == ["0"]  # a server install
    granted = discord.Permissions(int(query["permissions"][0]))
    assert granted == discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        embed_links=True,
        attach_files=True,
    )
    assert f"permissions={granted.value}" in DOCS.read_text()  # the integer the docs give is this one
    assert fake_discord.find_requests("GET", r"^/oauth2/applications/@me$")


async def test_the_setting_needs_no_token_and_a_bad_token_is_one_line(
    env: pytest.MonkeyPatch, fake_discord: FakeDiscord, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("IMAGINE_DISCORD_APPLICATION_ID", "123456789012345678")
    code, out, _ = await invite(capsys)
    assert code == 0 and "client_id=123456789012345678&" in out
    assert not fake_discord.find_requests("GET", r"^/oauth2/applications/@me$")

    env.delenv("IMAGINE_DISCORD_APPLICATION_ID")
    env.setenv("IMAGINE_DISCORD_TOKEN", "not-the-token")
    code, out, err = await invite(capsys)
    assert (code, out) == (2, "")
    assert re.fullmatch(r"imagine: IMAGINE_DISCORD_TOKEN was refused by Discord: [^\n]+\n", err)
    assert "not-the-token" not in err
