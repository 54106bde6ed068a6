"""The one place logging is set up: a handler on stderr, levels for Fluxcord and for discord.py."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: libraries whose INFO lines would only repeat what Fluxcord's own start-up line says
QUIET_LIBRARIES = ("discord", "aiohttp", "aiosqlite", "asyncio")


def configure_logging(level: str | int, *, verbose: bool = False, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record at `level` or above to `stream` (stderr); returns the handler, for filters to join.

    Libraries stay at WARNING unless `verbose`, so the first INFO line of a start is Fluxcord's own.
    """
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    if not verbose:
        handler.addFilter(library_tracebacks_in_one_line)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else max(logging.WARNING, numeric))
    return handler


def library_tracebacks_in_one_line(record: logging.LogRecord) -> bool:
    """A library's traceback (discord.py retrying a connection, say) becomes its last line; -v shows it whole."""
    if record.name.split(".")[0] not in QUIET_LIBRARIES:
        return True
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        last = f"{type(error).__name__}: {error}"
    elif record.exc_text:  # already rendered (and masked) when the record was made
        last = record.exc_text.strip().splitlines()[-1]
    else:
        return True
    record.msg = f"{record.getMessage()} ({last})"
    record.args = None
    record.exc_info = None
    record.exc_text = None
    return True
