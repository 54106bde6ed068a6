"""`python -m bot`: run (default) | check | sync | vary | imagine | credits | emulate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from bot.core.errors import UserError
from bot.core.images import normalize_input_async
from bot.core.jobs import JobState
from bot.core.requests import MEGAPIXELS, OUTPUT_FORMATS, ImagineOptions, VaryOptions
from bot.core.sizes import ASPECT_RATIOS
from bot.settings import Settings

log = logging.getLogger("bot")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A sentence for the operator and the exit code to leave with."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _generation_options(parser: argparse.ArgumentParser, *, vary: bool) -> None:
    if vary:
        parser.add_argument("--model", default="schnell", help="schnell (default) or dev")
        parser.add_argument("--aspect-ratio", default="auto", help=f"auto or one of {' '.join(ASPECT_RATIOS)}")
        parser.add_argument("--guidance", help="0-10, dev only (default 3)")
    else:
        parser.add_argument("--aspect-ratio", default="1:1", help=f"one of {' '.join(ASPECT_RATIOS)}")
    parser.add_argument("--count", default="1", help="1-4 images (default 1)")
    parser.add_argument("--megapixels", default="1", help=f"one of {' '.join(MEGAPIXELS)}")
    parser.add_argument("--steps", help="schnell 1-4 (default 4), dev 1-50 (default 28)")
    parser.add_argument("--seed", help="0 to 4294967295 (default: random, printed)")
    parser.add_argument("--format", default="webp", help=f"one of {' '.join(OUTPUT_FORMATS)}")
    parser.add_argument("--quality", default="80", help="0-100, ignored for png (default 80)")
    parser.add_argument("--safety", default="on", help="on (default) or off")
    parser.add_argument("--out", type=Path, default=Path("out"), help="folder for the images (default ./out)")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="log every job transition")
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="Fluxcord: FLUX.1 image generation for Discord.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", parents=[common], help="run the Discord bot (default)")
    sub.add_parser("check", parents=[common], help="validate the configuration and say what is missing")
    sub.add_parser("sync", parents=[common], help="register the slash commands with Discord now")
    credits = sub.add_parser("credits", parents=[common], help="grant or show a member's credits, without Discord")
    credit_actions = credits.add_subparsers(dest="action", required=True)
    grant = credit_actions.add_parser("grant", parents=[common], help="give a member credits (negative takes back)")
    grant.add_argument("guild", type=int, help="server id")
    grant.add_argument("user", type=int, help="member id")
    grant.add_argument("amount", type=int)
    grant.add_argument("--reason")
    show = credit_actions.add_parser("show", parents=[common], help="a member's credits and last movements")
    show.add_argument("guild", type=int, help="server id")
    show.add_argument("user", type=int, help="member id")
    vary = sub.add_parser("vary", parents=[common], help="vary an image with FLUX.1 Redux, without Discord")
    vary.add_argument("image", type=Path)
    _generation_options(vary, vary=True)
    imagine = sub.add_parser(
        "imagine", parents=[common], help="generate images from a prompt with FLUX.1 schnell, without Discord"
    )
    imagine.add_argument("prompt")
    _generation_options(imagine, vary=False)
    emulate = sub.add_parser(
        "emulate", parents=[common], help="serve a local Segmind emulator, to try Fluxcord without spending money"
    )
    emulate.add_argument("--port", type=int, default=8123, help="port of the first emulator; the next ones follow")
    emulate.add_argument(
        "--providers", default="segmind", help="comma-separated: segmind, replicate, eachlabs, onemin, or all"
    )
    emulate.add_argument("--time-scale", type=float, default=0.25, help="multiply every latency (default 0.25)")
    emulate.add_argument("--rpm", type=int, default=None, help="requests-per-minute budget (default: none)")
    return parser


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "FLUXCORD_" + str(first["loc"][0]).upper() if first["loc"] else "a setting"
        raise CliError(f"{name} is not valid: {first['msg']}.") from None


def check(settings: Settings, *, need_discord: bool) -> int:
    problems = settings.missing(need_discord=need_discord)
    print(f"database: {settings.database}")
    print(f"providers: {', '.join(settings.providers)} (segmind at {settings.segmind_base_url})")
    for problem in problems:
        print(f"missing: {problem}")
    if not problems:
        print("The configuration is complete.")
    return EXIT_FAILED if problems else EXIT_OK


async def run_one(settings: Settings, args: argparse.Namespace) -> int:
    """One job through the same engine and storage as the bot, images written to --out."""
    from bot.app import open_services
    from bot.jobs.engine import JobOrder
    from bot.terminal import TerminalNotifier

    common = {
        "count": args.count,
        "megapixels": args.megapixels,
        "steps": args.steps,
        "seed": args.seed,
        "output_format": args.format,
        "quality": args.quality,
        "safety": args.safety,
    }
    image = None
    if args.command == "vary":
        options = VaryOptions.parse(model=args.model, aspect_ratio=args.aspect_ratio, guidance=args.guidance, **common)
        try:
            data = await asyncio.to_thread(args.image.read_bytes)
        except OSError as exc:
            raise CliError(f"Cannot read {args.image}: {exc.strerror or exc}.") from None
        image = await normalize_input_async(
            data,
            max_bytes=settings.max_input_bytes,
            max_pixels=int(settings.max_input_megapixels * 1_000_000),
        )
        spec = options.resolve(image.source_size)
    else:
        spec = ImagineOptions.parse(prompt=args.prompt, aspect_ratio=args.aspect_ratio, **common).resolve()

    problems = settings.missing(need_discord=False)
    if problems:
        raise CliError(problems[0])
    notifier = TerminalNotifier(out_dir=args.out)
    started = time.monotonic()
    async with open_services(settings, notifier=notifier) as services:
        job = await services.engine.submit(
            JobOrder(
                request_id=f"cli:{uuid.uuid4()}",
                guild_id=0,
                user_id=0,
                spec=spec,
                input_image=image,
                origin="cli",
                free=True,
            )
        )
        finished = notifier.waiter(job.id)
        await services.engine.start(recover=False)
        job = await finished
    elapsed = time.monotonic() - started
    if job.state is not JobState.SUCCEEDED:
        print(f"The job {job.state.value}: {job.error}", file=sys.stderr)
        return EXIT_FAILED
    width, height = spec.size
    print(
        f"job {job.id}: {len(notifier.written[job.id])} of {spec.count} image(s), {width}×{height} "
        f"{spec.output_format}, {spec.model.label}, seed {spec.seed}, {spec.steps} steps, {elapsed:.1f} s"
    )
    for path in notifier.written[job.id]:
        print(path)
    return EXIT_OK


async def credits(settings: Settings, args: argparse.Namespace) -> int:
    """The operator's view of the same ledger the bot uses."""
    from bot.app import open_services
    from bot.jobs.notifier import NullNotifier

    async with open_services(settings, notifier=NullNotifier()) as services:
        admin = services.admin
        if args.action == "grant":
            balance = await admin.grant(
                args.guild,
                args.user,
                args.amount,
                actor_id=None,
                reason=args.reason or "operator (CLI)",
                key=f"cli:{uuid.uuid4()}",
            )
            print(f"{'Granted' if args.amount > 0 else 'Took back'} {abs(args.amount)} credits.")
        else:
            balance = await admin.balance(args.guild, args.user)
        print(
            f"spendable {balance.spendable} (allowance {balance.allowance} + granted {balance.granted}), "
            f"held {balance.held}"
        )
        if args.action == "show":
            for entry in await admin.ledger_entries(args.guild, args.user, limit=10):
                print(f"  {entry.created_at[:19]} {entry.kind:8} {entry.amount:6}  {entry.reason or ''}")
    return EXIT_OK


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
    started: list[EmulatorServer] = []
    lines = [f"export FLUXCORD_PROVIDERS={','.join(names)}"]
    try:
        for offset, name in enumerate(names):
            emulator = kinds[name](EmulatorConfig(time_scale=args.time_scale, rpm=args.rpm))
            root = await emulator.start(port=args.port + offset)
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


async def sync(settings: Settings) -> int:
    from bot.app import open_bot

    if not settings.discord_token:
        raise CliError("FLUXCORD_DISCORD_TOKEN (or DISCORD_TOKEN) is not set.", EXIT_FAILED)
    async with open_bot(settings) as bot:
        bot.start_engine = bot.sync_on_start = False
        await bot.login(settings.discord_token.get_secret_value())  # runs setup_hook: loads the commands
        await bot.sync_commands(force=True)
    print("Commands synced.")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    command = args.command or "run"
    try:
        if command == "emulate":
            return asyncio.run(emulate(args))
        settings = load_settings()
        if command == "check":
            return check(settings, need_discord=True)
        if command in ("vary", "imagine"):
            return asyncio.run(run_one(settings, args))
        if command == "run":
            problems = settings.missing(need_discord=True)
            if problems:
                raise CliError(" ".join(problems), EXIT_FAILED)
            import discord

            from bot.app import run_bot

            try:
                asyncio.run(run_bot(settings))
            except discord.LoginFailure:
                raise CliError("Discord refused the bot token; copy it again from the developer portal.", 1) from None
            return EXIT_OK
        if command == "sync":
            return asyncio.run(sync(settings))
        if command == "credits":
            return asyncio.run(credits(settings, args))
    except UserError as exc:
        print(exc.message, file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(exc.message, file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
