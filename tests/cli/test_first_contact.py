"""A newcomer's first try: `cp .env.example .env`, fill the token and one key, then check, imagine, run."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from PIL import Image

from emulators.common import EmulatorConfig
from emulators.discord.emulator import DiscordEmulator
from emulators.segmind import SegmindEmulator
from tests.cli.support import DEADLINE, clean_env, newcomer_env_file

INFO = re.compile(r"^\S+ \S+ INFO (?P<logger>\S+): (?P<message>.*)$")


async def python_m_bot(cwd: Path, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_readme_path_works_on_the_first_try(tmp_path: Path) -> None:
    config = EmulatorConfig(latency_median=0.3, latency_sigma=0.0, queue_seconds=0.05)
    async with DiscordEmulator() as discord_emu, SegmindEmulator(config) as segmind:
        newcomer_env_file(tmp_path, FLUXCORD_DISCORD_TOKEN=discord_emu.token, FLUXCORD_SEGMIND_API_KEY="SG_newcomer")
        env = clean_env()

        code, out, err = await python_m_bot(tmp_path, "check", env=env)
        assert code == 0, out + err
        assert "The configuration is complete" in out and err == ""

        # The offline demo: the README's one export points the same .env at the local emulator.
        demo = clean_env(FLUXCORD_SEGMIND_BASE_URL=segmind.base_url)
        code, out, err = await python_m_bot(tmp_path, "imagine", "a lighthouse", "--megapixels", "0.25", env=demo)
        assert code == 0, err
        written = [Path(tmp_path, line) for line in out.splitlines()[1:]]
        assert len(written) == 1
        with Image.open(written[0]) as image:
            assert image.size == (512, 512)

        # The bot itself, pointed at the local Discord as a REST proxy would be.
        bot_env = clean_env(
            FLUXCORD_SEGMIND_BASE_URL=segmind.base_url,
            FLUXCORD_DISCORD_API_BASE=discord_emu.api_base,
            FLUXCORD_DISCORD_GATEWAY_URL=discord_emu.gateway_url,
            FLUXCORD_EXPECTED_SECONDS='{"flux-schnell": 0.3}',
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=tmp_path, env=bot_env, stderr=asyncio.subprocess.PIPE
        )
        assert process.stderr is not None
        lines: list[str] = []
        try:
            first_info = None
            while first_info is None:
                line = (await asyncio.wait_for(process.stderr.readline(), DEADLINE)).decode()
                assert line, "the bot stopped before saying anything: " + "".join(lines)
                lines.append(line)
                first_info = INFO.match(line.strip())
            message = first_info["message"]
            assert message.startswith(f"Logged in as Fluxcord#0000 (id {discord_emu.bot.id}) on 1 server")
            assert (
                f"https://discord.com/oauth2/authorize?client_id={discord_emu.application_id}"
                "&scope=bot+applications.commands&permissions=117760"
            ) in message

            alice = discord_emu.add_member("alice")
            ack = await discord_emu.slash("imagine", user=alice, options={"prompt": "a fox", "megapixels": "0.25"})
            queued = await ack.wait_content("Queued job", timeout=DEADLINE)
            job_id = queued.content.split("`")[1]
            wanted = [
                f"job={job_id} user={alice.id}",
                "state=queued",
                "state=submitted",
                "state=succeeded",
                "delivered",
            ]
            while not all(any(w in line and job_id in line for line in lines) for w in wanted):
                line = (await asyncio.wait_for(process.stderr.readline(), DEADLINE)).decode()
                assert line, "".join(lines)
                lines.append(line)
        finally:
            process.terminate()
            rest = await asyncio.wait_for(process.stderr.read(), DEADLINE)
            await process.wait()
    text = "".join(lines) + rest.decode()
    assert process.returncode == 0, text
    assert "Traceback" not in text
    assert discord_emu.token not in text and "SG_newcomer" not in text
