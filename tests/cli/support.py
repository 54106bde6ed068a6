"""Running `python -m bot` as its own process, the way an operator does, in a clean environment."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: every test process must finish well within this; a hang fails the test instead of stalling the run
DEADLINE = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any Fluxcord setting or provider key, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FLUXCORD_") and not key.endswith(("_API_KEY", "_API_TOKEN")) and key != "DISCORD_TOKEN"
    }
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **extra})
    return env


def run_bot(cwd: Path, *args: str, env: dict[str, str], timeout: float = DEADLINE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def newcomer_env_file(folder: Path, **values: str) -> Path:
    """`cp .env.example .env`, then fill only the given settings, as the README tells a newcomer to."""
    target = folder / ".env"
    shutil.copy(ROOT / ".env.example", target)
    text = target.read_text()
    for name, value in values.items():
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.MULTILINE)
        assert count == 1, f"{name} is not a line of .env.example"
    target.write_text(text)
    return target
