from __future__ import annotations

from pathlib import Path

import pytest

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
