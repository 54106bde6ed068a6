"""`python -m bot`: run (default) | check | sync | vary | imagine | credits | backup | emulate."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import sys
import traceback
from collections.abc import Sequence

from pydantic import ValidationError

from bot.cli.errors import (
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    settings_error,
    unexpected,
)
from bot.cli.parser import build_parser
from bot.core.errors import StorageError, UserError
from bot.logs import configure_logging
from bot.settings import Settings
from bot.terminal import terminal_words

log = logging.getLogger("bot")


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise settings_error(exc) from None


async def emulate(args: argparse.Namespace) -> int:
    """Serve local provider emulators and print the settings that point Fluxcord at them."""
    from emulators.common import EmulatorConfig, EmulatorServer
    from emulators.eachlabs import EachlabsEmulator
    from emulators.onemin import OneMinEmulator
    from emulators.replicate import ReplicateEmulator
    from emulators.segmind import SegmindEmulator

    kinds: dict[str, type[EmulatorServer]] = {
        "segmind": SegmindEmulator,
        "replicate": ReplicateEmulator,
        "eachlabs": EachlabsEmulator,
        "onemin": OneMinEmulator,
    }
    names = list(kinds) if args.providers.strip() == "all" else [n.strip() for n in args.providers.split(",")]
    unknown = [name for name in names if name not in kinds]
    if unknown:
        raise CliError(f"Unknown provider {unknown[0]!r}; choose from {', '.join(kinds)} or all.")
    if args.port + len(names) - 1 > 65535:
        raise CliError(f"--port {args.port} leaves no room for {len(names)} emulators; choose a lower port.")
    started: list[EmulatorServer] = []
    lines = [f"export FLUXCORD_PROVIDERS={','.join(names)}"]
    try:
        for offset, name in enumerate(names):
            emulator = kinds[name](EmulatorConfig(time_scale=args.time_scale, rpm=args.rpm))
            port = args.port + offset
            try:
                root = await emulator.start(port=port)
            except OSError as exc:
                taken = exc.errno == errno.EADDRINUSE
                why = "is already in use" if taken else f"cannot be opened ({exc.strerror or exc})"
                raise CliError(f"Port {port} on 127.0.0.1 {why}; choose another with --port.", EXIT_CONFIG) from None
            started.append(emulator)
            lines.append(f"export FLUXCORD_{name.upper()}_BASE_URL={root} FLUXCORD_{name.upper()}_API_KEY=any-key")
            if isinstance(emulator, OneMinEmulator):
                lines.append(f"export FLUXCORD_ONEMIN_ASSET_BASE_URL={emulator.asset_base_url}")
        print("Provider emulators listening. Point Fluxcord at them with:")
        for line in lines:
            print(f"  {line}")
        sys.stdout.flush()
        await asyncio.Event().wait()
    finally:
        for emulator in started:
            await emulator.stop()
    return EXIT_OK


async def dispatch(args: argparse.Namespace) -> int:
    """Run the command; everything it raises is turned into one sentence by `main`."""
    from bot.cli import operations

    command = args.command or "run"
    if command == "emulate":
        return await emulate(args)
    settings = load_settings()
    # The bot logs at FLUXCORD_LOG_LEVEL; the one-off commands speak in sentences and log only with -v.
    if command == "run":
        configure_logging("DEBUG" if args.verbose else settings.log_level, verbose=args.verbose)
    if command == "check":
        from bot.cli.checks import run_check

        return await run_check(settings, online=args.online, stream=sys.stdout)
    if command in ("vary", "imagine"):
        from bot.cli.generate import run_one

        return await run_one(settings, args)
    if command == "run":
        return await operations.run(settings)
    if command == "sync":
        return await operations.sync(settings)
    if command == "credits":
        return await operations.credits(settings, args)
    if command == "backup":
        return await operations.backup(settings, args)
    raise CliError(f"Unknown command {command!r}; see python -m bot --help.")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging("INFO" if args.verbose else "CRITICAL", verbose=args.verbose)
    try:
        return asyncio.run(dispatch(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # every failure leaves as one sentence; -v adds where it came from
        error = explain(exc)
        if args.verbose:
            traceback.print_exc()
        print(error.message, file=sys.stderr)
        return error.code


def explain(exc: Exception) -> CliError:
    """The sentence and exit code for anything a command raised."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, UserError):
        return CliError(terminal_words(exc.message), EXIT_USAGE)
    if isinstance(exc, StorageError):
        return CliError(str(exc), EXIT_CONFIG)
    return unexpected(exc)


if __name__ == "__main__":
    sys.exit(main())
