"""The command line speaks terminal: flags instead of Discord options, files instead of attachments."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from bot.terminal import terminal_words
from emulators.common import EmulatorConfig
from emulators.segmind import SegmindEmulator
from tests.cli.support import DEADLINE, clean_env, run_bot


@pytest.mark.parametrize(
    ("discord", "terminal"),
    [
        (
            "`aspect_ratio` must be one of 1:1, 16:9 (got '7:3').",
            "--aspect-ratio must be one of 1:1, 16:9 (got '7:3').",
        ),
        ("`output_format` must be one of webp, jpg, png.", "--format must be one of webp, jpg, png."),
        (
            "`safety:off` is not allowed on this server; leave it on.",
            "--safety off is not allowed on this server; leave it on.",
        ),
        (
            "That image is 9000×9000 pixels (81 MP), over the 40 MP limit; attach a smaller image.",
            "That image is 9000×9000 pixels (81 MP), over the 40 MP limit; use a smaller image.",
        ),
        ("The attached file is empty; attach a PNG image.", "The file is empty; use a PNG image."),
        (
            "The job took longer than the time limit; your credits were refunded.",
            "The job took longer than the time limit; nothing was charged.",
        ),
    ],
)
def test_discord_sentences_read_as_terminal_sentences(discord: str, terminal: str) -> None:
    assert terminal_words(discord) == terminal


def test_taking_back_more_than_was_granted_says_what_was_taken(tmp_path: Path) -> None:
    env = clean_env(FLUXCORD_DATABASE=str(tmp_path / "f.db"))
    assert run_bot(tmp_path, "credits", "grant", "1", "2", "50", env=env).returncode == 0
    taken = run_bot(tmp_path, "credits", "grant", "1", "2", "-500", env=env)
    assert taken.returncode == 0
    assert taken.stdout.splitlines()[0] == "Took back 50 credits (asked for 500; only 50 were granted)."


def test_an_oversized_image_is_refused_in_terminal_words(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (7000, 7000)).save(tmp_path / "big.png")
    env = clean_env(FLUXCORD_DATABASE=str(tmp_path / "f.db"), FLUXCORD_SEGMIND_API_KEY="k")
    result = run_bot(tmp_path, "vary", "big.png", "--out", "out", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == "That image is 7000×7000 pixels (49 MP), over the 40 MP limit; use a smaller image."
    assert not (tmp_path / "out").exists()


async def test_a_refused_key_ends_the_job_with_the_setting_to_fix(tmp_path: Path) -> None:
    async with SegmindEmulator(EmulatorConfig(api_keys=frozenset({"right"}))) as segmind:
        env = clean_env(
            FLUXCORD_DATABASE=str(tmp_path / "f.db"),
            FLUXCORD_SEGMIND_API_KEY="wrong",
            FLUXCORD_SEGMIND_BASE_URL=segmind.base_url,
            FLUXCORD_RETRY_BASE_DELAY="0.01",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "imagine",
            "a fox",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    errors = err.decode()
    assert process.returncode == 1 and "Traceback" not in errors
    assert (
        errors.strip()
        .splitlines()[-1]
        .endswith("failed: Segmind: the key was refused (HTTP 401); check FLUXCORD_SEGMIND_API_KEY.")
    )
    assert "wrong" not in errors
