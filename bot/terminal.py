"""The terminal front end: a live progress line and the images written to a folder."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bot.core.jobs import Job, StoredOutput
from bot.jobs.notifier import Progress

# The core words its sentences for Discord members; the terminal names options as flags and files as files.
_OPTION = re.compile(r"`(?P<name>[a-z_]+)(?::(?P<value>[a-z]+))?`")
_FLAGS = {"output_format": "--format", "prompt": "the prompt"}
_PHRASES = (
    ("The attached file", "The file"),
    ("That attachment", "That file"),
    ("save or export it again and attach the new file", "save or export it again"),
    ("attach a smaller one", "use a smaller one"),
    ("attach a smaller image", "use a smaller image"),
    ("; attach a ", "; use a "),
    ("your credits were refunded", "nothing was charged"),
)


def _flag(match: re.Match[str]) -> str:
    name, value = match["name"], match["value"]
    flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
    return f"{flag} {value}" if value else flag


def terminal_words(sentence: str) -> str:
    """A sentence written for Discord, in the command line's words: `aspect_ratio` → --aspect-ratio, no attaching."""
    text = _OPTION.sub(_flag, sentence)
    for discord_words, terminal in _PHRASES:
        text = text.replace(discord_words, terminal)
    return text


@dataclass
class TerminalNotifier:
    """The engine's JobNotifier for the command line: one progress line on `stream`, the images into `out_dir`."""

    out_dir: Path
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    written: dict[str, list[Path]] = field(default_factory=dict)
    #: why the images of a job could not be written, by job id
    write_errors: dict[str, str] = field(default_factory=dict)
    finished: dict[str, asyncio.Future[Job]] = field(default_factory=dict)
    _last: str = ""
    _started: float = field(default_factory=time.monotonic)

    def waiter(self, job_id: str) -> asyncio.Future[Job]:
        return self.finished.setdefault(job_id, asyncio.get_running_loop().create_future())

    def _line(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        if self.stream.isatty():
            self.stream.write("\r\033[K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    async def queued(self, job: Job) -> int | None:
        self._line(self._plain(Progress(job.state).line()))
        return None  # a terminal has no message to remember

    def progress(self, job: Job, progress: Progress) -> None:
        self._line(self._plain(progress.line()))

    def _plain(self, line: str) -> str:
        # Not on a terminal each line stays; one per state is enough there (not one per second).
        return line if self.stream.isatty() else line.split(" ·")[0].split(" (")[0]

    async def done(self, job: Job, outputs: list[StoredOutput]) -> int | None:
        try:
            paths = await asyncio.to_thread(self._write, job, outputs)
        except OSError as exc:
            # Said once and left to the caller; raising tells the engine the result was not delivered.
            self.write_errors[job.id] = f"{exc.strerror or exc}"
            self._resolve(job)
            raise
        self.written[job.id] = paths
        self._line(f"Done in {time.monotonic() - self._started:.1f} s")
        self._resolve(job)
        return None

    async def failed(self, job: Job) -> int | None:
        # The command prints the one closing sentence; here the progress line just ends.
        self._resolve(job)
        return None

    async def close(self) -> None:
        return None

    def _resolve(self, job: Job) -> None:
        if self.stream.isatty():
            self.stream.write("\n")
        future = self.finished.get(job.id)
        if future is not None and not future.done():
            future.set_result(job)

    def _write(self, job: Job, outputs: list[StoredOutput]) -> list[Path]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for output in outputs:
            path = self.out_dir / f"{job.id}-{output.index + 1}.{output.format}"
            path.write_bytes(output.data)
            paths.append(path)
        return paths
