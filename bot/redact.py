"""Secrets never leave the process: a mask for text, and a logging hook that applies it to every record."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Iterable
from types import TracebackType
from typing import Any

#: what a secret is replaced with wherever text leaves the process
MASK = "[redacted]"
# Shorter values would mask ordinary words; no real key or token is this short.
_MIN_SECRET = 6

_lock = threading.Lock()
_installed: Redactor | None = None


class Redactor:
    """Replaces every known secret in a text with MASK."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        found = {secret.strip() for secret in secrets if secret and len(secret.strip()) >= _MIN_SECRET}
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = tuple(sorted(found | set(self._secrets), key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def __bool__(self) -> bool:
        return bool(self._secrets)


def _scrub(record: logging.LogRecord, redact: Redactor) -> None:
    """Render the record's message and traceback now, masked, so no handler or formatter sees the raw text."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: keep what there is
        message = f"{record.msg} {record.args!r}"
    record.msg = redact(message)
    record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install(secrets: Iterable[str | None]) -> Redactor:
    """Mask `secrets` in every log record created from now on, whichever logger or handler, and in crashes.

    Installing again adds to the same redactor, so each secret is masked however many times it is called.
    """
    global _installed
    with _lock:
        if _installed is not None:
            _installed.add(secrets)
            return _installed
        redact = Redactor(secrets)
        make_record = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            _scrub(record, redact)
            return record

        logging.setLogRecordFactory(factory)
        previous_hook = sys.excepthook

        def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
            if not redact:
                previous_hook(kind, value, tb)
                return
            sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))

        sys.excepthook = excepthook
        _installed = redact
        return redact


def installed() -> Redactor:
    """The process's redactor (empty until `install` is called)."""
    return _installed if _installed is not None else Redactor()
