"""The command line's options: the same `-v` anywhere, errors in one sentence, exit codes in `--help`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from bot.cli.errors import EXIT_CODES, EXIT_USAGE
from bot.core.requests import MEGAPIXELS, OUTPUT_FORMATS
from bot.core.sizes import ASPECT_RATIOS

PROG = "python -m bot"
EPILOG = "exit codes:\n" + "\n".join(f"  {code:<4}{meaning}" for code, meaning in EXIT_CODES)


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line that says how to get help."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message}; see {self.prog} --help.\n")
        raise SystemExit(EXIT_USAGE)


def port(text: str) -> int:
    value = _integer(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"the port must be between 1 and 65535 (got {text})")
    return value


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"it must be at least 1 (got {text})")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"it must be more than 0 (got {text})")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _generation_options(parser: argparse.ArgumentParser, *, vary: bool) -> None:
    if vary:
        parser.add_argument("--model", default="schnell", help="schnell (default) or dev")
        parser.add_argument("--aspect-ratio", default="auto", help=f"auto or one of {' '.join(ASPECT_RATIOS)}")
        parser.add_argument("--steps", help="schnell 1-4 (default 4), dev 1-50 (default 28)")
        parser.add_argument("--guidance", help="0-10, dev only (default 3)")
    else:
        parser.add_argument("--aspect-ratio", default="1:1", help=f"one of {' '.join(ASPECT_RATIOS)}")
        parser.add_argument("--steps", help="1-4 (default 4)")
    parser.add_argument("--count", default="1", help="1-4 images (default 1)")
    parser.add_argument("--megapixels", default="1", help=f"one of {' '.join(MEGAPIXELS)}")
    parser.add_argument("--seed", help="0 to 4294967295 (default: random, printed)")
    parser.add_argument("--format", default="webp", help=f"one of {' '.join(OUTPUT_FORMATS)}")
    parser.add_argument("--quality", default="80", help="0-100, ignored for png (default 80)")
    parser.add_argument("--safety", default="on", help="on (default) or off")
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the images (default ./out)")


def build_parser() -> Parser:
    # `-v` is accepted before and after the subcommand: the subcommands' own `-v` leaves the value alone
    # unless given there (SUPPRESS), so one given before the subcommand is not reset to False.
    verbose = Parser(add_help=False)
    verbose.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="more log lines, and tracebacks"
    )
    parser = Parser(
        prog=PROG,
        description="Fluxcord: FLUX.1 image generation for Discord.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="more log lines, and tracebacks")
    sub = parser.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")

    def command(group: argparse._SubParsersAction[Parser], name: str, help: str) -> Parser:
        return group.add_parser(
            name, help=help, parents=[verbose], epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
        )

    command(sub, "run", "run the Discord bot (default)")
    check = command(sub, "check", "validate the configuration and say what is missing")
    check.add_argument("--online", action="store_true", help="also try the Discord token and each key (no charge)")
    command(sub, "sync", "register the slash commands with Discord now")
    credits = command(sub, "credits", "grant or show a member's credits, without Discord")
    actions = credits.add_subparsers(dest="action", required=True, parser_class=Parser, metavar="ACTION")
    grant = command(actions, "grant", "give a member credits (negative takes back)")
    grant.add_argument("guild", type=int, help="server id")
    grant.add_argument("user", type=int, help="member id")
    grant.add_argument("amount", type=int)
    grant.add_argument("--reason")
    show = command(actions, "show", "a member's credits and last movements")
    show.add_argument("guild", type=int, help="server id")
    show.add_argument("user", type=int, help="member id")
    vary = command(sub, "vary", "vary an image with FLUX.1 Redux, without Discord")
    vary.add_argument("image", type=Path)
    _generation_options(vary, vary=True)
    imagine = command(sub, "imagine", "generate images from a prompt with FLUX.1 schnell, without Discord")
    imagine.add_argument("prompt")
    _generation_options(imagine, vary=False)
    backup = command(sub, "backup", "copy the database to FILE, safely while the bot runs")
    backup.add_argument("file", type=Path, help="the copy to write (a folder gets a dated file inside)")
    backup.add_argument("--force", action="store_true", help="replace FILE if it exists")
    emulate = command(sub, "emulate", "serve local provider emulators, to try Fluxcord without spending money")
    emulate.add_argument("--port", type=port, default=8123, help="port of the first emulator; the next ones follow")
    emulate.add_argument(
        "--providers", default="segmind", help="comma-separated: segmind, replicate, eachlabs, onemin, or all"
    )
    emulate.add_argument("--time-scale", type=positive_float, default=0.25, help="multiply every latency (0.25)")
    emulate.add_argument("--rpm", type=positive_int, default=None, help="requests-per-minute budget (default: none)")
    return parser
