"""`python -m bot vary|imagine`: one job through the same engine and storage as the bot, images written to --out."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bot.cli.checks import check_keys, first_unreachable, label, provider_sentence, url_setting
from bot.cli.errors import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, CliError
from bot.core.errors import UserError
from bot.core.images import NormalizedImage, normalize_input_async
from bot.core.jobs import Job, JobState
from bot.core.requests import GenerationSpec, ImagineOptions, VaryOptions
from bot.settings import Settings
from bot.terminal import terminal_words


def prepare_out_dir(out: Path) -> None:
    """Make sure the images can be written before anything is sent to a provider."""
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} is a file; give a folder (it is created if missing).", EXIT_USAGE)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise CliError(
            f"--out {out} cannot be used ({exc.strerror or exc}); choose a folder you can write to.", EXIT_USAGE
        ) from None


async def read_spec(settings: Settings, args: argparse.Namespace) -> tuple[GenerationSpec, NormalizedImage | None]:
    """The job's options, checked, and for `vary` the normalized input image."""
    common = {
        "count": args.count,
        "megapixels": args.megapixels,
        "steps": args.steps,
        "seed": args.seed,
        "output_format": args.format,
        "quality": args.quality,
        "safety": args.safety,
    }
    if args.command != "vary":
        return ImagineOptions.parse(prompt=args.prompt, aspect_ratio=args.aspect_ratio, **common).resolve(), None
    options = VaryOptions.parse(model=args.model, aspect_ratio=args.aspect_ratio, guidance=args.guidance, **common)
    try:
        data = await asyncio.to_thread(args.image.read_bytes)
    except OSError as exc:
        raise CliError(f"Cannot read {args.image}: {exc.strerror or exc}.") from None
    image = await normalize_input_async(
        data, max_bytes=settings.max_input_bytes, max_pixels=int(settings.max_input_megapixels * 1_000_000)
    )
    return options.resolve(image.source_size), image


async def run_one(settings: Settings, args: argparse.Namespace) -> int:
    """One job, start to finish, with a progress line on stderr and a summary on stdout."""
    from bot.app import open_services
    from bot.jobs.engine import JobOrder
    from bot.terminal import TerminalNotifier

    try:
        spec, image = await read_spec(settings, args)
    except UserError as exc:
        raise CliError(terminal_words(exc.message), EXIT_USAGE) from None
    problems = settings.missing(need_discord=False)
    if problems:
        raise CliError(problems[0], EXIT_CONFIG)
    prepare_out_dir(args.out)
    notifier = TerminalNotifier(out_dir=args.out)
    started = time.monotonic()
    async with open_services(settings, notifier=notifier) as services:
        serving = {
            slot.name: str(getattr(slot.provider, "base_url", ""))
            for slot in services.engine.pool.slots
            if spec.model in slot.provider.models
        }
        unreachable = await first_unreachable(serving)
        if unreachable is not None:
            name, where, reason = unreachable
            raise CliError(
                f"Could not reach {label(name)} at {where} ({reason}); check {url_setting(name)} and the network "
                "(nothing was sent).",
                EXIT_UNREACHABLE,
            )
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
        # Whatever happens to the delivery, the command ends: either the notifier hears of the job or the
        # engine runs out of work (a delivery that kept failing).
        idle = asyncio.ensure_future(services.engine.run_until_idle())
        heard = asyncio.ensure_future(asyncio.wait([finished]))
        await asyncio.wait([idle, heard], return_when=asyncio.FIRST_COMPLETED)
        idle.cancel()
        heard.cancel()
        job = finished.result() if finished.done() else await services.jobs.get(job.id) or job
        if job.state is not JobState.SUCCEEDED:
            return await _failure(settings, job)
    elapsed = time.monotonic() - started
    if job.id in notifier.write_errors or job.id not in notifier.written:
        reason = notifier.write_errors.get(job.id, "the result never arrived")
        print(
            f"Job {job.id} succeeded but its images could not be written to {args.out} ({reason}); "
            "free some space or choose another --out.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    width, height = spec.size
    print(
        f"job {job.id}: {len(notifier.written[job.id])} of {spec.count} image(s), {width}×{height} "
        f"{spec.output_format}, {spec.model.label}, seed {spec.seed}, {spec.steps} steps, {elapsed:.1f} s"
    )
    for path in notifier.written[job.id]:
        print(path)
    return EXIT_OK


async def _failure(settings: Settings, job: Job) -> int:
    """The closing sentence of a job that did not succeed; a job no provider accepted asks why with a key check."""
    if job.state is JobState.FAILED and job.provider is None:
        for check in await check_keys(settings):
            if not check.ok:
                code = EXIT_UNREACHABLE if not check.reachable else EXIT_FAILED
                print(f"Job {job.id} failed: {label(check.provider)}: {provider_sentence(check)}", file=sys.stderr)
                return code
    reason = terminal_words(job.error or "no reason given")
    print(f"Job {job.id} {job.state.value}: {reason[0].lower() + reason[1:]}", file=sys.stderr)
    return EXIT_FAILED
