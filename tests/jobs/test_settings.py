"""Settings: one clear line naming the variable; secrets never shown; `.env.example` lists every field."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from jobs.errors import ImagineError, SettingsError
from jobs.settings import SECRET_FIELDS, Settings, env_example, env_name, load_settings, markdown_table

ROOT = Path(__file__).resolve().parents[2]
SECRET = "xoxb-very-secret-value"


def test_defaults_need_nothing() -> None:
    settings = load_settings(env_file=None)
    assert settings.db_url == "sqlite+aiosqlite:///data/imagine.db"
    assert (settings.model_name, settings.vqgan_name) == (
        "dalle-mini/dalle-mini",
        "dalle-mini/vqgan_imagenet_f16_16384",
    )
    assert settings.models_dir == Path("data/models")


def test_environment_and_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "IMAGINE_LEASE_SECONDS=5\nIMAGINE_DATA_DIR=/srv/imagine\nIMAGINE_DISCORD_DEV_GUILD_ID=\n"
    )
    monkeypatch.setenv("IMAGINE_BATCH_IMAGES", "16")
    settings = load_settings(env_file=env_file)
    assert (settings.lease_seconds, settings.batch_images) == (5.0, 16)
    assert settings.db_url == "sqlite+aiosqlite:////srv/imagine/imagine.db"
    assert settings.discord_dev_guild_id is None  # empty means unset


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("IMAGINE_LEASE_SECONDS", "soon", "IMAGINE_LEASE_SECONDS: Input should be a valid number"),
        ("IMAGINE_MAX_ATTEMPTS", "0", "IMAGINE_MAX_ATTEMPTS: Input should be greater than or equal to 1"),
        (
            "IMAGINE_DATABASE_URL",
            "postgresql://u:pw@h/db",
            "IMAGINE_DATABASE_URL: must start with sqlite+aiosqlite:// or postgresql+asyncpg://",
        ),
        ("IMAGINE_DTYPE", "float8", "IMAGINE_DTYPE: Input should be"),
        ("IMAGINE_DASHBOARD_PORT", "99999", "IMAGINE_DASHBOARD_PORT"),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, words: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=None)
    message = str(caught.value)
    assert words in message and "\n" not in message
    assert isinstance(caught.value, ImagineError) and caught.value.__cause__ is None
    assert "pw" not in message  # a database URL may carry a password


def test_dashboard_without_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGINE_DASHBOARD_ENABLED", "true")
    with pytest.raises(SettingsError, match="IMAGINE_DASHBOARD_PASSWORD must be set"):
        load_settings(env_file=None)


def test_upscaler_overlap_must_be_less_than_its_tile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGINE_UPSCALER_TILE_PIXELS", "16")
    monkeypatch.setenv("IMAGINE_UPSCALER_OVERLAP_PIXELS", "16")
    with pytest.raises(SettingsError, match="IMAGINE_UPSCALER_OVERLAP_PIXELS must be less than"):
        load_settings(env_file=None)


def test_secrets_never_shown(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for field in SECRET_FIELDS:
        monkeypatch.setenv(env_name(field), SECRET)
    monkeypatch.setenv("IMAGINE_DATABASE_URL", f"postgresql+asyncpg://imagine:{SECRET}@db/imagine")
    monkeypatch.setenv("IMAGINE_DASHBOARD_ENABLED", "true")
    monkeypatch.setenv("IMAGINE_SLACK_CLIENT_ID", "1111.2222")  # the client secret comes with its id
    settings = load_settings(env_file=None)
    assert settings.slack_bot_token is not None and settings.slack_bot_token.get_secret_value() == SECRET
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s %r", settings, settings)
    for shown in (str(settings), repr(settings), caplog.text, str(settings.model_dump())):
        assert SECRET not in shown
    monkeypatch.setenv("IMAGINE_SLACK_APP_TOKEN", "x" * 5000)  # still a str: fine; now break a number
    monkeypatch.setenv("IMAGINE_HEARTBEAT_SECONDS", "-1")
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=None)
    assert SECRET not in str(caught.value)


def test_secret_in_a_bad_value_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGINE_DATABASE_URL", f"mysql://root:{SECRET}@db/imagine")
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file=None)
    assert SECRET not in str(caught.value) and "IMAGINE_DATABASE_URL" in str(caught.value)


def test_env_example_lists_every_setting_with_its_default() -> None:
    text = (ROOT / ".env.example").read_text()
    assert text == env_example(), "regenerate it: python -m jobs.settings > .env.example"
    for name in Settings.model_fields:
        assert f"\n{env_name(name)}=" in text


def test_markdown_table_lists_every_setting() -> None:
    table = markdown_table()
    assert all(f"| `{env_name(name)}` |" in table for name in Settings.model_fields)
    assert "| `IMAGINE_DISCORD_TOKEN` | (unset) | bot token; empty disables Discord (secret) |" in table


def test_the_slack_client_id_and_secret_come_together() -> None:
    with pytest.raises(SettingsError, match="IMAGINE_SLACK_CLIENT_ID and IMAGINE_SLACK_CLIENT_SECRET"):
        load_settings(env_file=None, slack_client_id="1111.2222")
    both = load_settings(env_file=None, slack_client_id="1111.2222", slack_client_secret="s")
    assert both.slack_oauth and not load_settings(env_file=None).slack_oauth
