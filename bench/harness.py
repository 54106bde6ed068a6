"""The pieces of bench/overhead.py: bot processes, their CPU and memory, inputs, the Discord emulator's log."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from bot.ui.render import job_named, shows_outcome
from emulators.discord.emulator import DiscordEmulator

ROOT = Path(__file__).resolve().parents[1]
CALLBACK = "POST /interactions/{interaction}/{token}/callback"
_BARE_RESULT = re.compile(r"^result for (\d+) \(([\w-]+)\)")
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc; wall time would measure the machine's load)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def picture(width: int, height: int, seed: int, *, grain: bool) -> Image.Image:
    """Smooth areas and edges (and grain, for a photo), so it compresses like a real picture, not a test card."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for n in range(12):
        x, y = (seed * 97 + n * 211) % width, (seed * 53 + n * 157) % height
        r = 40 + (n * 37 + seed) % (min(width, height) // 3)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=((n * 60) % 256, (seed * 40 + n * 20) % 256, 120))
    if not grain:
        return image
    noise = Image.effect_noise((width, height), 24).convert("RGB")
    return Image.blend(image.filter(ImageFilter.GaussianBlur(2)), noise, 0.12)


def inputs() -> list[tuple[str, bytes, str]]:
    """What members attach: a photo (JPEG 2016×1512), a drawing (PNG 1280×960) and a small WebP photo."""
    made: list[tuple[str, bytes, str]] = []
    for name, size, fmt, mime in (
        ("photo.jpg", (2016, 1512), "JPEG", "image/jpeg"),
        ("drawing.png", (1280, 960), "PNG", "image/png"),
        ("small.webp", (800, 600), "WEBP", "image/webp"),
    ):
        buffer = io.BytesIO()
        picture(*size, seed=len(made) + 1, grain=fmt != "PNG").save(buffer, fmt, quality=90)
        made.append((name, buffer.getvalue(), mime))
    return made


@dataclass
class BotProcess:
    """A bot running as its own process (as in production), so its CPU and memory are its own."""

    kind: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss_peak(self) -> float:
        return rss_peak_mb(self.pid)


@asynccontextmanager
async def bot_process(
    kind: str,
    emulator: DiscordEmulator,
    segmind: str,
    provider_seconds: float,
    workdir: Path,
    *,
    bot_root: Path = ROOT,
) -> AsyncIterator[BotProcess]:
    """Start `fluxcord` (python -m bot, from `bot_root`) or `bare` (bench/bare_bot.py); wait until it is ready."""
    expected = f'{{"flux-redux-schnell": {provider_seconds}, "flux-schnell": {provider_seconds}}}'
    env = {key: value for key, value in os.environ.items() if not key.startswith(("FLUXCORD_", "BARE_"))}
    if kind == "fluxcord":
        env |= {
            "PYTHONPATH": str(bot_root),
            "DISCORD_TOKEN": emulator.token,
            "SEGMIND_API_KEY": "SG_bench",
            "FLUXCORD_DISCORD_API_BASE": emulator.api_base,
            "FLUXCORD_DISCORD_GATEWAY_URL": emulator.gateway_url,
            "FLUXCORD_SEGMIND_BASE_URL": segmind,
            "FLUXCORD_DATABASE": str(workdir / "fluxcord.db"),
            "FLUXCORD_EXPECTED_SECONDS": expected,
            # The provider and the server are not the limit here: the bot is.
            "FLUXCORD_SEGMIND_CONCURRENCY": "5000",
            "FLUXCORD_SEGMIND_RPM": "1000000",
            "FLUXCORD_SERVER_CONCURRENCY": "5000",
        }
        command = [sys.executable, "-m", "bot"]
    else:
        env |= {
            "PYTHONPATH": str(ROOT),
            "BARE_TOKEN": emulator.token,
            "BARE_API_BASE": emulator.api_base,
            "BARE_GATEWAY": emulator.gateway_url,
            "BARE_SEGMIND": segmind,
            "BARE_PROVIDER_SECONDS": str(provider_seconds),
        }
        command = [sys.executable, "-m", "bench.bare_bot"]
    log = workdir / f"{kind}.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=workdir, env=env, stdout=output, stderr=asyncio.subprocess.STDOUT
        )
    try:
        await emulator.wait_for(lambda: emulator.ready.is_set() and _synced(emulator), timeout=60)
        yield BotProcess(kind, process, log)
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 20)
            if process.returncode is None:
                process.kill()
                await process.wait()


def _synced(emulator: DiscordEmulator) -> bool:
    try:
        emulator.find_command("vary")
    except LookupError:
        return False
    return True


def callback_times(emulator: DiscordEmulator) -> dict[int, float]:
    """When the first answer to each interaction arrived."""
    found: dict[int, float] = {}
    for request in emulator.calls(CALLBACK):
        interaction_id = int(request.path.split("/")[4])
        found.setdefault(interaction_id, request.at)
    return found


def _target(emulator: DiscordEmulator, method: str, path: str, content: object) -> str:
    if method == "PATCH":
        message = emulator.messages.get(int(path.rsplit("/", 1)[1]))
        content = message.content if message is not None else ""
    return str(content or "")


def outcome_times(emulator: DiscordEmulator) -> tuple[dict[str, float], dict[str, str]]:
    """When each job's images first reached its channel (by job id, or by interaction id for the bare bot),
    and the bare bot's provider request id per interaction."""
    arrived: dict[str, float] = {}
    provider_ids: dict[str, str] = {}
    for request in emulator.requests:
        if not request.files or request.status != 200 or "/channels/" not in request.path:
            continue
        content = _target(emulator, request.method, request.path, (request.json or {}).get("content"))
        key = job_named(content)
        if key is None and (bare := _BARE_RESULT.match(content)):
            key = bare[1]
            provider_ids[key] = bare[2]
        if key is not None:
            arrived.setdefault(key, request.at)
    return arrived, provider_ids


def progress_edits(emulator: DiscordEmulator) -> dict[str, int]:
    """Status-line edits (not outcomes) per job."""
    counts: dict[str, int] = {}
    for request in emulator.calls("PATCH /channels/{channel}/messages/{message}"):
        content = str((request.json or {}).get("content", ""))
        if request.status != 200 or request.files or shows_outcome(content):
            continue
        job_id = job_named(_target(emulator, "PATCH", request.path, ""))
        if job_id is not None:
            counts[job_id] = counts.get(job_id, 0) + 1
    return counts


def provider_ids(database: Path) -> dict[str, str]:
    """Fluxcord's job id → the provider's request id, read straight from the bot's SQLite file after the run."""
    with contextlib.closing(sqlite3.connect(database)) as conn:
        rows = conn.execute("SELECT id, provider_job_id FROM jobs WHERE provider_job_id IS NOT NULL").fetchall()
    return {job_id: provider_job_id for job_id, provider_job_id in rows}
