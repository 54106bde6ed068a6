"""All configuration, read once from the environment (prefix FLUXCORD_) and an optional .env file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.core.limits import Limits, OperatorGuard, OperatorPolicy
from bot.core.pricing import PriceList
from bot.core.requests import ModelId
from bot.jobs.downloads import DISCORD_CDN_ORIGINS
from bot.jobs.timing import DEFAULT_EXPECTED_SECONDS


def _env(name: str, *conventional: str) -> AliasChoices:
    """Accept FLUXCORD_<NAME> and, for keys, the names other tools use for the same secret."""
    return AliasChoices(f"FLUXCORD_{name}", *conventional)


class Settings(BaseSettings):
    """Every setting Fluxcord reads; `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="FLUXCORD_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # `KEY=` in .env or `docker run --env-file` means "not set", for every setting and every alias.
        env_ignore_empty=True,
    )

    # Discord
    discord_token: SecretStr | None = Field(default=None, validation_alias=_env("DISCORD_TOKEN", "DISCORD_TOKEN"))
    discord_api_base: str | None = Field(
        default=None, description="Another Discord REST base, e.g. http://127.0.0.1:8080/api/v10 (a proxy or emulator)."
    )
    discord_gateway_url: str | None = Field(
        default=None, description="Another gateway, e.g. ws://127.0.0.1:8080/gateway."
    )
    dev_guild_id: int | None = Field(default=None, description="Register commands in this server only (instant).")
    status_edit_interval: float = Field(default=2.0, ge=0, description="Seconds between edits of a status message.")
    attachment_origins: Annotated[list[str], NoDecode] = Field(
        default=list(DISCORD_CDN_ORIGINS),
        description="Where members' attachments may be downloaded from (scheme://host[:port]), comma-separated.",
    )

    # Storage
    database: Path = Path("data/fluxcord.db")

    # Providers
    providers: Annotated[list[str], NoDecode] = Field(
        default=["segmind"],
        description="Provider order, comma-separated; the first that serves a model is used.",
    )
    segmind_api_key: SecretStr | None = Field(default=None, validation_alias=_env("SEGMIND_API_KEY", "SEGMIND_API_KEY"))
    segmind_base_url: str = "https://api.segmind.com"
    segmind_concurrency: int = Field(default=10, ge=1)
    segmind_rpm: int = Field(default=50, ge=1)
    segmind_image_input: Literal["upload", "data-uri"] = "upload"
    segmind_upload_url: str | None = None
    replicate_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=_env("REPLICATE_API_TOKEN", "FLUXCORD_REPLICATE_API_KEY", "REPLICATE_API_TOKEN"),
    )
    replicate_base_url: str = "https://api.replicate.com"
    replicate_concurrency: int = Field(default=10, ge=1)
    replicate_rpm: int = Field(default=600, ge=1)
    replicate_wait_seconds: int = Field(default=10, ge=0, le=60)
    eachlabs_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("EACHLABS_API_KEY", "EACHLABS_API_KEY")
    )
    eachlabs_base_url: str = "https://api.eachlabs.ai"
    eachlabs_concurrency: int = Field(default=10, ge=1)
    eachlabs_rpm: int = Field(default=60, ge=1)
    onemin_api_key: SecretStr | None = Field(default=None, validation_alias=_env("ONEMIN_API_KEY", "ONEMIN_API_KEY"))
    onemin_base_url: str = "https://api.1min.ai"
    onemin_asset_base_url: str = "https://asset.1min.ai"
    onemin_concurrency: int = Field(default=4, ge=1)
    onemin_rpm: int = Field(default=60, ge=1)

    # Requests to providers
    request_timeout: float = Field(default=30.0, gt=0)
    max_output_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    retry_base_delay: float = Field(default=1.0, ge=0)
    retry_max_delay: float = Field(default=60.0, ge=0)
    job_deadline: float = Field(default=900.0, gt=0, description="Seconds before a job is expired.")
    poll_min_interval: float = Field(default=0.25, gt=0)
    poll_max_interval: float = Field(default=30.0, gt=0)
    expected_seconds: dict[ModelId, float] = Field(
        default_factory=lambda: dict(DEFAULT_EXPECTED_SECONDS),
        description="How long each model takes until this deployment has its own history.",
    )

    # Inputs
    max_input_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_input_megapixels: float = Field(default=40.0, gt=0)

    # Credits
    price_redux_schnell: int = Field(default=1, ge=0)
    price_redux_dev: int = Field(default=8, ge=0)
    price_schnell: int = Field(default=2, ge=0)
    daily_allowance: int = Field(default=20, ge=0)
    max_daily_allowance: int = Field(default=1000, ge=0)

    # Limits: defaults, and the most a server admin may set
    jobs_per_minute: int = Field(default=5, ge=1)
    max_jobs_per_minute: int = Field(default=30, ge=1)
    active_jobs: int = Field(default=2, ge=1)
    max_active_jobs: int = Field(default=4, ge=1)
    queued_jobs: int = Field(default=5, ge=0)
    max_queued_jobs: int = Field(default=20, ge=0)
    server_concurrency: int = Field(default=8, ge=1)

    # Operating it
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR, for `python -m bot run`.")
    allowed_guilds: Annotated[list[int], NoDecode] = Field(
        default=[], description="Server ids the bot serves, comma-separated; empty = every server it is in."
    )
    daily_credit_cap: int = Field(
        default=2500, ge=0, description="Credits all servers together may spend a day (UTC), whatever each allows."
    )
    segmind_low_balance: float = Field(
        default=5.0, ge=0, description="Warn when Segmind reports fewer credits than this (0 = never)."
    )
    onemin_low_balance: float = Field(
        default=0.0, ge=0, description="Warn when 1min.ai reports fewer credits than this (0 = never)."
    )

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("attachment_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_guilds", mode="before")
    @classmethod
    def _split_guilds(cls, value: object) -> object:
        if isinstance(value, str):
            return [part for part in re.split(r"[\s,]+", value) if part]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: object) -> object:
        if isinstance(value, str):
            level = value.strip().upper()
            if level not in LOG_LEVELS:
                raise ValueError(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
            return level
        return value

    @field_validator("segmind_base_url", "replicate_base_url", "eachlabs_base_url")
    @classmethod
    def _api_root(cls, value: str) -> str:
        return checked_url(value, schemes=("http", "https"), api_root=True)

    @field_validator("discord_api_base")
    @classmethod
    def _discord_url(cls, value: str | None) -> str | None:
        return None if value is None else checked_url(value, schemes=("http", "https"))

    @field_validator("onemin_base_url")
    @classmethod
    def _onemin_url(cls, value: str) -> str:
        return checked_url(value, schemes=("http", "https"), api_root=True, suffix="/api")

    @field_validator("onemin_asset_base_url")
    @classmethod
    def _asset_url(cls, value: str) -> str:
        return checked_url(value, schemes=("http", "https"))

    @field_validator("discord_gateway_url")
    @classmethod
    def _gateway_url(cls, value: str | None) -> str | None:
        return None if value is None else checked_url(value, schemes=("ws", "wss"))

    @field_validator("expected_seconds", mode="after")
    @classmethod
    def _complete_expected(cls, value: dict[ModelId, float]) -> dict[ModelId, float]:
        return {**DEFAULT_EXPECTED_SECONDS, **value}

    @property
    def prices(self) -> PriceList:
        return PriceList(
            redux_schnell=self.price_redux_schnell,
            redux_dev=self.price_redux_dev,
            schnell=self.price_schnell,
        )

    @property
    def operator_policy(self) -> OperatorPolicy:
        return OperatorPolicy(
            daily_allowance=self.daily_allowance,
            max_daily_allowance=self.max_daily_allowance,
            defaults=Limits(self.jobs_per_minute, self.active_jobs, self.queued_jobs, self.server_concurrency),
            maxima=Limits(
                self.max_jobs_per_minute, self.max_active_jobs, self.max_queued_jobs, self.server_concurrency
            ),
        )

    @property
    def operator_guard(self) -> OperatorGuard:
        return OperatorGuard(allowed_guilds=frozenset(self.allowed_guilds), daily_cap=self.daily_credit_cap)

    @property
    def low_balances(self) -> dict[str, float]:
        """Below these balances (in each provider's own credits) a warning is logged and shown to admins."""
        return {"segmind": self.segmind_low_balance, "onemin": self.onemin_low_balance}

    def missing(self, *, need_discord: bool) -> list[str]:
        """Names of the settings that must be set before Fluxcord can run, each with what to do."""
        problems: list[str] = []
        if need_discord and not _secret(self.discord_token):
            problems.append(
                "FLUXCORD_DISCORD_TOKEN (or DISCORD_TOKEN) is not set: the bot token from the Discord developer portal."
            )
        configured = [name for name in self.providers if self.provider_key(name)]
        if not configured:
            problems.append(
                "No provider key is set for FLUXCORD_PROVIDERS: set FLUXCORD_SEGMIND_API_KEY (or SEGMIND_API_KEY), "
                "REPLICATE_API_TOKEN, EACHLABS_API_KEY or ONEMIN_API_KEY, and list the provider."
            )
        unknown = [name for name in self.providers if name not in KNOWN_PROVIDERS]
        if unknown:
            problems.append(
                f"FLUXCORD_PROVIDERS names unknown providers: {', '.join(unknown)} "
                f"(known: {', '.join(KNOWN_PROVIDERS)})."
            )
        return problems

    def provider_key(self, name: str) -> str | None:
        if name not in KNOWN_PROVIDERS:
            return None
        value: SecretStr | None = getattr(self, f"{name}_api_key")
        return _secret(value)


KNOWN_PROVIDERS = ("segmind", "replicate", "eachlabs", "onemin")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_VERSION_SUFFIX = re.compile(r"/v\d+$")


def checked_url(value: str, *, schemes: tuple[str, ...], api_root: bool = False, suffix: str | None = None) -> str:
    """`value` if it is an absolute URL with one of `schemes` and a host; ValueError saying what is wrong otherwise.

    An API root must not end in a version (`/v2`) or `suffix`: the adapters add those themselves.
    """
    text = value.strip()
    parts = urlsplit(text)
    wanted = " or ".join(f"{scheme}://" for scheme in schemes)
    if parts.scheme.lower() not in schemes or not parts.hostname or " " in text:
        raise ValueError(f"{text!r} is not a URL starting with {wanted} and a host name")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number or out of range
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port") from None
    path = parts.path.rstrip("/")
    if api_root and (_VERSION_SUFFIX.search(path) or (suffix and path.endswith(suffix))):
        end = path.rsplit("/", 1)[-1]
        raise ValueError(f"{text!r} ends in /{end}, which Fluxcord adds itself")
    return text


def _secret(value: SecretStr | None) -> str | None:
    if value is None:
        return None
    return value.get_secret_value().strip() or None
