"""The terminal front end: a live progress line and the images written to a folder."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bot.core.jobs import Job, StoredOutput
from bot.jobs.notifier import Progress


@dataclass
class TerminalNotifier:
    """The engine's JobNotifier for the command line: one progress line on `stream`, the images into `out_dir`."""

    out_dir: Path
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    written: dict[str, list[Path]] = field(default_factory=dict)
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
        self._line(Progress(job.state).line())
        return None  # a terminal has no message to remember

    def progress(self, job: Job, progress: Progress) -> None:
        self._line(progress.line())

    async def done(self, job: Job, outputs: list[StoredOutput]) -> int | None:
        paths = await asyncio.to_thread(self._write, job, outputs)
        self.written[job.id] = paths
        self._line(f"Done in {time.monotonic() - self._started:.1f} s")
        self._resolve(job)
        return None

    async def failed(self, job: Job) -> int | None:
        self._line(f"{job.state.value.capitalize()}: {job.error or 'no reason given'}")
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
