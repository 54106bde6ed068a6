"""No secret ever leaves: providers that echo the keys in their error bodies, jobs through Discord and the
CLI, and the keys and the bot token found nowhere — logs, messages, the database, stdout or stderr."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from bot.core.requests import ModelId
from bot.settings import Settings
from emulators.common import EmulatorConfig
from emulators.discord.emulator import DiscordEmulator
from emulators.eachlabs import EachlabsEmulator
from emulators.onemin import OneMinEmulator
from emulators.replicate import ReplicateEmulator
from emulators.segmind import SegmindEmulator
from tests.e2e.conftest import Start, job_id_from, png, wait_result

ROOT = Path(__file__).resolve().parents[2]
FAST = EmulatorConfig(latency_median=0.2, latency_sigma=0.0, queue_seconds=0.02)
KEYS = {
    "segmind": "SG_9f1c0ffee5ecre7a",
    "replicate": "r8_Zr3plic4teT0kenForTests",
    "eachlabs": "each-9b7d-sekrit-4417",
    "onemin": "onemin-77c1-hush-hush-52",
}


def leaks(secrets: Iterable[str], **texts: str) -> dict[str, list[str]]:
    """Which secrets appear in which text (also half a secret, as a truncation would leave)."""
    found: dict[str, list[str]] = {}
    for where, text in texts.items():
        hits = [s for s in secrets if s in text or s[: len(s) // 2 + 2] in text or s[len(s) // 2 - 2 :] in text]
        if hits:
            found[where] = hits
    return found


def database_text(path: Path) -> str:
    return "".join(file.read_bytes().decode("latin-1") for file in path.parent.glob(path.name + "*") if file.is_file())


def messages_text(discord_emu: DiscordEmulator) -> str:
    states = [dataclasses.asdict(state) for message in discord_emu.messages.values() for state in message.edits]
    return json.dumps(states) + "".join(message.content for message in discord_emu.messages.values())


async def test_secrets_echoed_by_every_provider_reach_no_member_no_log_no_row(
    tmp_path: Path,
    discord_emu: DiscordEmulator,
    start_bot: Start,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = [*KEYS.values(), discord_emu.token]
    echo = {"error": "denied for key {api_key} (bot " + discord_emu.token + ")"}
    async with (
        SegmindEmulator(FAST) as segmind,
        ReplicateEmulator(FAST) as replicate,
        EachlabsEmulator(FAST) as eachlabs,
        OneMinEmulator(FAST) as onemin,
    ):
        # Each provider refuses with the key (and the bot token) in its body: 401, 403 and 500s.
        segmind.fail_next(500, route="upload", body=echo)
        segmind.fail_next(401, route="submit", body=echo)
        replicate.fail_next(403, route="create", body={"detail": echo["error"], "title": "Forbidden"})
        eachlabs.fail_next(500, route="get", body=echo, times=2)
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            discord_token=discord_emu.token,
            discord_api_base=discord_emu.api_base,
            discord_gateway_url=discord_emu.gateway_url,
            attachment_origins=[discord_emu.root],
            providers=["segmind", "replicate", "eachlabs", "onemin"],
            segmind_api_key=KEYS["segmind"],
            segmind_base_url=segmind.base_url,
            replicate_api_key=KEYS["replicate"],
            replicate_base_url=replicate.base_url,
            replicate_wait_seconds=0,
            eachlabs_api_key=KEYS["eachlabs"],
            eachlabs_base_url=eachlabs.base_url,
            onemin_api_key=KEYS["onemin"],
            onemin_base_url=onemin.base_url,
            onemin_asset_base_url=onemin.asset_base_url,
            database=tmp_path / "fluxcord.db",
            status_edit_interval=0.1,
            poll_min_interval=0.03,
            poll_max_interval=0.1,
            retry_base_delay=0.02,
            retry_max_delay=0.1,
            expected_seconds={model: 0.2 for model in ModelId},
        )
        await start_bot(settings)
        alice = discord_emu.add_member("alice")
        outcomes = []
        for run, options in enumerate(
            (
                {"megapixels": "0.25"},  # Segmind 401 → Replicate 403 → Eachlabs, whose polls fail twice
                {"megapixels": "0.25", "seed": 2},  # Eachlabs 401 → 1min.ai, whose blocking call answers 500
            )
        ):
            if run == 1:
                eachlabs.fail_next(401, route="create", body=echo)
                onemin.fail_next(500, route="features", body={"error": {"message": echo["error"]}})
            ack = await discord_emu.slash(
                "vary", user=alice, options=options, attachments={"image": ("a.png", png(), "image/png")}
            )
            job_id = job_id_from((await ack.wait_content("Queued job", timeout=20)).content)
            outcomes.append((await wait_result(discord_emu, job_id, timeout=30)).content)
        assert "Done" in outcomes[0] and "Failed" in outcomes[1]
        assert "denied" not in outcomes[1]  # a plain sentence, never the provider's words
        assert eachlabs.counts["get"] >= 3 and onemin.counts["features"] == 1

    out, err = capfd.readouterr()
    assert "denied for key" in caplog.text  # the operator's log keeps the provider's message...
    assert (
        leaks(  # ...masked, like everything else
            secrets,
            log=caplog.text,
            messages=messages_text(discord_emu),
            database=database_text(tmp_path / "fluxcord.db"),
            stdout=out,
            stderr=err,
        )
        == {}
    )


async def test_secrets_echoed_to_the_cli_reach_neither_its_output_nor_its_database(tmp_path: Path) -> None:
    key = KEYS["segmind"]
    echo = {"error": "key {api_key} is not valid"}
    image = tmp_path / "in.png"
    image.write_bytes(png())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXCORD_") and not k.endswith("_API_KEY")}
    async with SegmindEmulator(FAST) as segmind:
        env.update(
            FLUXCORD_SEGMIND_BASE_URL=segmind.base_url,
            FLUXCORD_SEGMIND_API_KEY=key,
            FLUXCORD_DATABASE=str(tmp_path / "cli.db"),
            FLUXCORD_RETRY_BASE_DELAY="0.01",
            FLUXCORD_RETRY_MAX_DELAY="0.05",
            FLUXCORD_EXPECTED_SECONDS='{"flux-redux-schnell": 0.2}',
        )
        texts: dict[str, str] = {}
        # First a key refused (401 on the upload), then two refused submits (500) before a success.
        for run, faults in enumerate(([(401, "upload")], [(500, "submit"), (500, "submit")])):
            for status, route in faults:
                segmind.fail_next(status, route=route, body=echo)
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "vary",
                str(image),
                "--megapixels",
                "0.25",
                "--out",
                str(tmp_path / "out"),
                "-v",
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), 60)
            texts[f"stdout{run}"], texts[f"stderr{run}"] = out.decode(), err.decode()
            assert process.returncode == (1 if run == 0 else 0), texts[f"stderr{run}"]
    assert "is not valid" in texts["stderr0"] and "not available right now" in texts["stderr0"]
    assert leaks([key], database=database_text(tmp_path / "cli.db"), **texts) == {}
