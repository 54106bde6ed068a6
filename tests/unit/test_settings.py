from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import KNOWN_PROVIDERS, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text()
    missing = [name for name in Settings.model_fields if f"FLUXCORD_{name.upper()}=" not in text]
    assert missing == []


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("DISCORD_TOKEN", "discord_token"),
        ("SEGMIND_API_KEY", "segmind_api_key"),
        ("REPLICATE_API_TOKEN", "replicate_api_key"),
        ("EACHLABS_API_KEY", "eachlabs_api_key"),
        ("ONEMIN_API_KEY", "onemin_api_key"),
    ],
)
def test_conventional_key_names_are_accepted_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, variable: str, field: str
) -> None:
    monkeypatch.setenv(variable, "s3cr3t-value")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert getattr(settings, field).get_secret_value() == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in str(settings.model_dump())


def test_providers_are_read_comma_separated_and_unknown_ones_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXCORD_PROVIDERS", "Replicate, segmind ,bogus")
    monkeypatch.setenv("FLUXCORD_SEGMIND_API_KEY", "k")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.providers == ["replicate", "segmind", "bogus"]
    problems = settings.missing(need_discord=False)
    assert problems == [f"FLUXCORD_PROVIDERS names unknown providers: bogus (known: {', '.join(KNOWN_PROVIDERS)})."]


def test_an_empty_value_means_not_set_for_every_setting_and_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    # `cp .env.example .env` leaves many `NAME=` lines; docker --env-file passes them as empty strings.
    for name in Settings.model_fields:
        monkeypatch.setenv(f"FLUXCORD_{name.upper()}", "")
    for alias in ("DISCORD_TOKEN", "SEGMIND_API_KEY", "REPLICATE_API_TOKEN", "FLUXCORD_REPLICATE_API_TOKEN"):
        monkeypatch.setenv(alias, "")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings == Settings.model_construct(
        **{n: f.get_default(call_default_factory=True) for n, f in Settings.model_fields.items()}
    )
    # An empty preferred name does not hide a conventional one that is set.
    monkeypatch.setenv("DISCORD_TOKEN", "t0ken")
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_key")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.discord_token is not None and settings.discord_token.get_secret_value() == "t0ken"
    assert settings.replicate_api_key is not None and settings.replicate_api_key.get_secret_value() == "r8_key"


def test_the_example_file_as_copied_loads_with_its_defaults(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text())
    settings = Settings(_env_file=env)  # type: ignore[call-arg]
    assert settings.dev_guild_id is None and settings.allowed_guilds == [] and settings.discord_token is None
    assert settings.segmind_base_url == "https://api.segmind.com"


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("FLUXCORD_SEGMIND_BASE_URL", "notaurl", "is not a URL starting with http:// or https://"),
        ("FLUXCORD_REPLICATE_BASE_URL", "api.replicate.com", "is not a URL starting with http:// or https://"),
        ("FLUXCORD_SEGMIND_BASE_URL", "https://api.segmind.com/v2", "ends in /v2, which Fluxcord adds itself"),
        ("FLUXCORD_ONEMIN_BASE_URL", "https://api.1min.ai/api/", "ends in /api"),
        ("FLUXCORD_DISCORD_GATEWAY_URL", "https://gateway.discord.gg", "ws:// or wss://"),
        ("FLUXCORD_EACHLABS_BASE_URL", "http://host:99999", "invalid port"),
        ("FLUXCORD_LOG_LEVEL", "loud", "not one of DEBUG, INFO, WARNING, ERROR"),
    ],
)
def test_urls_and_levels_are_checked_when_read(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=reason):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_proxy_path_and_the_discord_api_version_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUXCORD_DISCORD_API_BASE", "http://127.0.0.1:8080/api/v10")
    monkeypatch.setenv("FLUXCORD_SEGMIND_BASE_URL", "https://proxy.example/segmind")
    monkeypatch.setenv("FLUXCORD_ALLOWED_GUILDS", "123, 456 789")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.discord_api_base == "http://127.0.0.1:8080/api/v10"
    assert settings.segmind_base_url == "https://proxy.example/segmind"
    assert settings.operator_guard.allowed_guilds == frozenset({123, 456, 789})
