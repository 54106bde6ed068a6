"""The Dockerfile and compose.yaml, read as Docker would (no Docker engine here): user, volume, env file, command."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml

from bot.settings import Settings
from tests.cli.support import newcomer_env_file

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in instructions():
        if word == "ENV":
            env.update(dict(part.split("=", 1) for part in shlex.split(rest)))
    return env


def env_file(path: Path) -> dict[str, str]:
    """Docker's --env-file rules: KEY=VALUE per line, `#` lines skipped, values taken literally."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_the_image_runs_as_an_unprivileged_user_with_the_database_on_its_volume() -> None:
    steps = instructions()
    user = [rest for word, rest in steps if word == "USER"]
    assert user == ["fluxcord"]
    run = " ".join(rest for word, rest in steps if word == "RUN")
    assert "useradd --system --uid 10001" in run and "chown fluxcord /data" in run
    assert [json.loads(rest) for word, rest in steps if word == "VOLUME"] == [["/data"]]
    assert image_env()["FLUXCORD_DATABASE"].startswith("/data/")
    assert [json.loads(rest) for word, rest in steps if word == "CMD"] == [["python", "-m", "bot"]]
    copied = {rest.split()[0] for word, rest in steps if word == "COPY"}
    assert copied.isdisjoint({"tests", "emulators", "bench", ".env"})  # no fakes, no secrets in the image
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_compose_runs_the_bot_with_its_env_file_volume_and_command() -> None:
    service = compose()["services"]["fluxcord"]
    assert service["build"] == "."
    assert service["env_file"] in (".env", [".env"])
    assert "fluxcord-data:/data" in service["volumes"]
    assert "fluxcord-data" in compose()["volumes"]
    assert service["command"] == ["python", "-m", "bot"]
    assert service.get("user") in (None, "fluxcord", "10001")


def test_a_newcomers_env_file_puts_the_database_on_the_volume_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dotenv = env_file(newcomer_env_file(tmp_path, FLUXCORD_DISCORD_TOKEN="t", FLUXCORD_SEGMIND_API_KEY="k"))
    service = compose()["services"]["fluxcord"]
    # Docker's order: the image's ENV, then --env-file / env_file, then compose's `environment`.
    docker_run = {**image_env(), **dotenv}
    compose_up = {**image_env(), **dotenv, **service["environment"]}
    for env in (docker_run, compose_up):
        for name in list(os.environ):
            if name.startswith("FLUXCORD_") or name in ("DISCORD_TOKEN", "SEGMIND_API_KEY"):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert str(settings.database).startswith("/data/")
        assert settings.missing(need_discord=True) == []
