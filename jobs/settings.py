"""One typed settings object, read from IMAGINE_* environment variables and `.env`, once, in `main()`.

`load_settings()` turns a validation error into one `SettingsError` line naming the variable; secrets are
`SecretStr`, so they never show in a repr, a log line or an error message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from jobs.errors import SettingsError

ENV_PREFIX = "IMAGINE_"
DB_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


class Settings(BaseSettings):
    """Every knob of the bot. `.env.example` lists them all with their defaults (tests check it)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,  # `IMAGINE_X=` in .env.example means "unset", not ""
    )

    # storage
    data_dir: Path = Field(Path("data"), description="where the SQLite file and model cache live")
    # A secret: a Postgres URL carries its password.
    database_url: SecretStr = Field(
        SecretStr(""),
        description="SQLAlchemy async URL; empty: sqlite+aiosqlite:///<data_dir>/imagine.db. "
        "Postgres: postgresql+asyncpg://user:password@host/db",
    )
    # Discord
    discord_token: SecretStr | None = Field(None, description="bot token; empty disables Discord")
    discord_application_id: int | None = Field(
        None,
        description="application id (OAuth2 client id) for the install link; empty: asked with the token",
    )
    discord_client_secret: SecretStr | None = Field(
        None,
        description="OAuth2 client secret: Sign in with Discord on the dashboard (with the application id)",
    )
    discord_dev_guild_id: int | None = Field(None, description="sync slash commands to this guild at once")
    discord_api_url: str = Field(
        "https://discord.com/api/v10",
        description="Discord REST API base URL (an HTTP proxy such as nirn-proxy shares rate limits)",
    )
    # Slack (Socket Mode)
    slack_bot_token: SecretStr | None = Field(None, description="xoxb-…; empty disables Slack")
    slack_app_token: SecretStr | None = Field(None, description="xapp-… for Socket Mode")
    slack_signing_secret: SecretStr | None = Field(None, description="verifies HTTP requests from Slack")
    slack_client_id: str | None = Field(
        None,
        description="OAuth client id: workspaces install at /slack/install (HTTP mode); empty: one token",
    )
    slack_client_secret: SecretStr | None = Field(
        None, description="OAuth client secret (with the client id)"
    )
    slack_redirect_uri: str | None = Field(
        None, description="https://<host>/slack/oauth_redirect when the app lists several redirect URLs"
    )
    slack_http_host: str = Field("0.0.0.0", description="HTTP mode (no app token): listen address")
    slack_http_port: int = Field(3000, ge=0, le=65535, description="HTTP mode: port of /slack/events")
    slack_admin_user_ids: str = Field(
        "", description="Slack user ids (comma-separated) that may use the admin commands everywhere"
    )
    slack_api_url: str = Field(
        "https://slack.com/api/", description="Slack Web API base URL (GovSlack: https://slack-gov.com/api/)"
    )
    # admin web dashboard
    dashboard_enabled: bool = Field(False, description="serve the admin dashboard")
    dashboard_host: str = Field("127.0.0.1", description="dashboard listen address")
    dashboard_port: int = Field(8080, ge=1, le=65535, description="dashboard listen port")
    dashboard_password: SecretStr | None = Field(None, description="required when the dashboard is on")
    # model
    model_name: str = Field("dalle-mini/dalle-mini", description="DalleBart checkpoint on the HF hub")
    model_revision: str = Field("main", description="hub revision of the DalleBart checkpoint")
    model_dir: Path | None = Field(None, description="local DalleBart checkpoint dir instead of the hub")
    vqgan_name: str = Field("dalle-mini/vqgan_imagenet_f16_16384", description="VQGAN checkpoint on the hub")
    vqgan_revision: str = Field("main", description="hub revision of the VQGAN checkpoint")
    vqgan_dir: Path | None = Field(None, description="local VQGAN checkpoint dir instead of the hub")
    clip_name: str = Field(
        "openai/clip-vit-base-patch32",
        description="CLIP checkpoint on the hub that ranks each grid best first (~600 MB); empty: no ranking",
    )
    clip_revision: str = Field("main", description="hub revision of the CLIP checkpoint")
    clip_dir: Path | None = Field(None, description="local CLIP checkpoint dir instead of the hub")
    upscaler_name: str = Field(
        "caidas/swin2SR-realworld-sr-x4-64-bsrgan-psnr",
        description="Swin2SR x4 checkpoint on the hub for ⬆ Upscale (~50 MB); empty: no upscaling",
    )
    upscaler_revision: str = Field("main", description="hub revision of the upscaler checkpoint")
    upscaler_dir: Path | None = Field(None, description="local upscaler checkpoint dir instead of the hub")
    upscaler_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="upscaler matmuls: auto: bfloat16 where the chip has native bf16 (a GPU, a CPU with "
        "AVX512-BF16 or AMX; 2x faster, 50+ dB PSNR to float32), else float32",
    )
    upscaler_tile_pixels: int = Field(
        72, ge=8, le=4096, description="input pixels per upscaler tile side (memory is bounded by one tile)"
    )
    upscaler_overlap_pixels: int = Field(
        8, ge=0, description="input pixels neighbouring upscaler tiles share, averaged so seams do not show"
    )
    candidates_per_image: int | None = Field(
        None,
        ge=1,
        le=4,
        description="candidates drawn per shown image, CLIP keeps the best (1: rank only); "
        "empty: 1 on CPU, 2 on GPU; servers may set their own",
    )
    previews: bool | None = Field(
        None,
        description="progress edits carry a preview of the grid so far (a VQGAN decode per quarter); "
        "empty: on with a GPU, off on a CPU",
    )
    model_cache_dir: Path | None = Field(None, description="converted checkpoints; empty: <data_dir>/models")
    device: str = Field("auto", description="torch device: auto, cpu, cuda, cuda:1, …")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="auto: bfloat16/float16 on GPU, float32 on CPU"
    )
    decoder_weights: Literal["float32", "bfloat16", "int8"] = Field(
        "float32",
        description="CPU fast mode: bfloat16 or int8 (per row) decoder weights; draws differ from float32",
    )
    vqgan_dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="auto: bfloat16 on CPUs with AVX512-BF16, else float32"
    )
    # queue
    batch_images: int = Field(8, ge=1, le=1024, description="images one generator renders per batch")
    lease_seconds: float = Field(60.0, gt=0, description="a claim lasts this long unless heartbeated")
    heartbeat_seconds: float = Field(10.0, gt=0, description="how often a worker extends its lease")
    max_attempts: int = Field(3, ge=1, le=100, description="renders tried per job before it fails")
    max_running_per_user: int = Field(2, ge=1, description="jobs one user may have rendering at once")
    max_queued_per_user: int = Field(10, ge=1, description="jobs one user may have waiting")
    daily_quota_images: int = Field(200, ge=0, description="images per user per UTC day (0: no limit)")
    upscale_quota_images: int = Field(
        4, ge=0, description="an upscale counts as this many images against the daily quota (its GPU cost)"
    )
    max_prompt_length: int = Field(300, ge=1, le=10000, description="characters in a prompt")
    blocked_words: str = Field(
        "", description="words refused in every prompt, in every server and DM (comma-separated)"
    )
    delivery_timeout_seconds: float = Field(
        3600.0, gt=0, description="give up posting a result this long after it finished"
    )
    # operations
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="logging level")
    log_format: Literal["text", "json"] = Field(
        "text", description="log lines: text (message key=value …) or json (one object per line)"
    )
    generator_metrics_host: str = Field("127.0.0.1", description="generator /metrics and /healthz address")
    generator_metrics_port: int | None = Field(
        None, ge=0, le=65535, description="serve /metrics and /healthz from the generator; empty: off"
    )
    retention_images_days: float = Field(
        0, ge=0, description="delete pictures of jobs older than this many days (0: keep forever)"
    )
    retention_prompts_days: float = Field(
        0, ge=0, description="blank prompts of jobs older than this many days (0: keep forever)"
    )

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url:
            return value
        if not url.startswith(DB_SCHEMES):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// (the queue is async)"
            )
        try:
            port = make_url(url).port
        except (ArgumentError, ValueError):
            raise ValueError("is not a database URL: scheme://user:password@host:port/database") from None
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"its port must be from 1 to 65535, not {port}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _dashboard_password(self) -> Settings:
        if self.dashboard_enabled and not self.dashboard_password:
            raise ValueError(f"{env_name('dashboard_password')} must be set when the dashboard is enabled")
        return self

    @model_validator(mode="after")
    def _slack_oauth_pair(self) -> Settings:
        if bool(self.slack_client_id) != bool(self.slack_client_secret):
            raise ValueError(
                f"{env_name('slack_client_id')} and {env_name('slack_client_secret')} are set together "
                "(Basic Information → App Credentials)"
            )
        return self

    @property
    def slack_oauth(self) -> bool:
        """Workspaces install through Slack's OAuth flow (tokens in the database), not one bot token."""
        return bool(self.slack_client_id and self.slack_client_secret)

    @model_validator(mode="after")
    def _upscaler_overlap(self) -> Settings:
        if self.upscaler_overlap_pixels >= self.upscaler_tile_pixels:
            raise ValueError(
                f"{env_name('upscaler_overlap_pixels')} must be less than {env_name('upscaler_tile_pixels')}"
            )
        return self

    @property
    def db_url(self) -> str:
        """The database URL to use: `database_url`, or the SQLite file in `data_dir`."""
        sqlite_file = (self.data_dir / "imagine.db").as_posix()
        return self.database_url.get_secret_value() or f"sqlite+aiosqlite:///{sqlite_file}"

    @property
    def models_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"


SECRET_FIELDS = frozenset(
    name for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)
)


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(env_file: str | Path | None = ".env", **overrides: object) -> Settings:
    """Read settings; a bad value becomes one `SettingsError` line naming the variable (never its secret)."""
    try:
        # pydantic-settings takes _env_file and field overrides as init arguments its signature lacks
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg,arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if not error["loc"]:  # a whole-model check: its message names the variables itself
                problems.append(error["msg"].removeprefix("Value error, "))
                continue
            name = str(error["loc"][0])
            shown = "" if name in SECRET_FIELDS or "input" not in error else f" (got {error['input']!r:.60})"
            problems.append(f"{env_name(name)}: {error['msg'].removeprefix('Value error, ')}{shown}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None


def _shown_default(name: str) -> str:
    default = Settings.model_fields[name].default
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if default is None:
        return ""
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, Path):
        return default.as_posix()
    return str(default)


def env_example() -> str:
    """The text of `.env.example`: every setting, its description and its default."""
    lines = ["# /imagine bot settings: copy to .env and edit. Empty means unset.", ""]
    for name, f in Settings.model_fields.items():
        lines.append(f"# {f.description}")
        lines.append(f"{env_name(name)}={_shown_default(name)}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The README's configuration table: variable, default, meaning (secrets marked)."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, f in Settings.model_fields.items():
        default = _shown_default(name)
        secret = " (secret)" if name in SECRET_FIELDS else ""
        meaning = (f.description or "").replace("|", "\\|")
        lines.append(
            f"| `{env_name(name)}` | {f'`{default}`' if default else '(unset)'} | {meaning}{secret} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m jobs.settings > .env.example; python -m jobs.settings --markdown
    import sys

    print(markdown_table() if "--markdown" in sys.argv else env_example(), end="")
