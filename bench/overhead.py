"""What Fluxcord adds on top of a bare discord.py bot: CPU, time, acknowledgements, status edits, 429s, memory.

Both bots run as their own processes against the same Discord emulator (this process, which plays the
members) and the same Segmind emulator (its own process) with a fixed provider time:

1. one job at a time: time from the command to the images in the channel;
2. 100 members at once (/vary, five per channel): the same, and CPU per job;
3. 50 commands a second (/vary, /imagine, /credits, /jobs): time to each command's first answer;
4. many jobs in flight in one channel under Discord's rate limits (run 10× faster): status edits per job,
   429s, how long results take once the provider is done, CPU per job and peak memory.

    python -m bench.overhead                 # full run (1,000 jobs in one channel)
    python -m bench.overhead --quick         # a few minutes
    python -m bench.overhead --bot-root DIR  # Fluxcord from another checkout (figures before a change)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import (
    ROOT,
    BotProcess,
    bot_process,
    callback_times,
    inputs,
    outcome_times,
    progress_edits,
    provider_ids,
)
from bench.providers import EmulatorState, remote_emulator
from emulators.common import EmulatorConfig
from emulators.discord.emulator import DiscordEmulator, Interaction, Member
from emulators.discord.ratelimits import RateLimits

RESULTS = Path(__file__).parent / "results" / "overhead.md"
KINDS = ("bare", "fluxcord")
COMMANDS = ("vary", "imagine", "credits", "jobs")


@dataclass(frozen=True)
class Plan:
    sequential: int
    burst: int
    ack_seconds: float
    ack_rate: float
    crowd: int
    crowd_rate: float
    provider_seconds: float = 2.0
    crowd_provider_seconds: float = 20.0
    crowd_time_scale: float = 0.1  # Discord's rate-limit windows, shrunk
    channels: int = 20


FULL = Plan(sequential=20, burst=100, ack_seconds=20.0, ack_rate=50.0, crowd=1000, crowd_rate=100.0)
QUICK = Plan(
    sequential=6, burst=100, ack_seconds=6.0, ack_rate=50.0, crowd=300, crowd_rate=100.0, crowd_provider_seconds=10.0
)


@dataclass
class Figures:
    """Everything measured for one bot."""

    sequential: list[float] = field(default_factory=list)
    burst: list[float] = field(default_factory=list)
    burst_cpu: float = 0.0
    acks: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    refused: int = 0
    crowd_edits: list[int] = field(default_factory=list)
    crowd_delays: list[float] = field(default_factory=list)
    crowd_cpu: float = 0.0
    crowd_seconds: float = 0.0
    count_429: int = 0
    rss_mb: float = 0.0


@dataclass
class Context:
    kind: str
    emulator: DiscordEmulator
    bot: BotProcess
    workdir: Path
    segmind_state: Callable[[], Awaitable[EmulatorState]]
    images: list[tuple[str, bytes, str]]


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def key_of(context: Context, interaction: Interaction) -> str | None:
    """What the bot's outcome is filed under: Fluxcord's job id, or the interaction id for the bare bot."""
    if context.kind == "bare":
        return str(interaction.id)
    text = interaction.text
    return text.split("`")[1] if text.startswith("Queued job `") else None


async def send(context: Context, command: str, member: Member, channel: int, n: int) -> tuple[Interaction, float]:
    emulator = context.emulator
    sent = time.monotonic()
    if command == "vary":
        name, data, mime = context.images[n % len(context.images)]
        interaction = await emulator.slash(
            "vary", user=member, channel_id=channel, attachments={"image": (name, data, mime)}
        )
    elif command == "imagine":
        options = {"prompt": f"a lighthouse at dawn, take {n}", "megapixels": "0.25"}
        interaction = await emulator.slash("imagine", user=member, channel_id=channel, options=options)
    else:
        interaction = await emulator.slash(command, user=member, channel_id=channel)
    return interaction, sent


async def outcomes(
    context: Context, sent: list[tuple[Interaction, float]], wait: float
) -> tuple[list[float], dict[str, float], int]:
    """Wait until every job's images are in its channel; (latencies, outcome time by key, refused count)."""
    deadline = time.monotonic() + wait
    while True:
        arrived, _ = outcome_times(context.emulator)
        keys = [key_of(context, interaction) for interaction, _ in sent]
        answered = all(interaction.text for interaction, _ in sent)
        if answered and all(key is None or key in arrived for key in keys):
            break
        if time.monotonic() > deadline:
            logging.warning("%s: %d of %d outcomes after %.0f s", context.kind, len(arrived), len(sent), wait)
            break
        await asyncio.sleep(0.25)
    latencies = [arrived[key] - at for (_, at), key in zip(sent, keys, strict=True) if key in arrived]
    return latencies, arrived, sum(1 for key in keys if key is None)


async def sequential(context: Context, plan: Plan, figures: Figures) -> None:
    member = context.emulator.add_member("solo")
    for n in range(plan.sequential):
        sent = [await send(context, "vary", member, context.emulator.channel_id, n)]
        latencies, _, _ = await outcomes(context, sent, wait=60)
        figures.sequential += latencies


async def burst(context: Context, plan: Plan, channels: list[int], figures: Figures) -> None:
    members = [context.emulator.add_member(f"burst{n}") for n in range(plan.burst)]
    before = context.bot.cpu()
    sent = [await send(context, "vary", member, channels[n % len(channels)], n) for n, member in enumerate(members)]
    figures.burst, _, figures.refused = await outcomes(context, sent, wait=180)
    await asyncio.sleep(0.5)  # bookkeeping after the last post
    figures.burst_cpu = (context.bot.cpu() - before) / max(1, len(figures.burst))


async def acknowledgements(context: Context, plan: Plan, channels: list[int], figures: Figures) -> None:
    total = round(plan.ack_seconds * plan.ack_rate)
    members = [context.emulator.add_member(f"ack{n}") for n in range(total)]
    mix = ["vary", "imagine", "vary", "credits", "imagine", "vary", "jobs", "imagine", "credits", "vary"]
    sent: list[tuple[str, Interaction, float]] = []
    began = time.monotonic()
    for n, member in enumerate(members):
        await asyncio.sleep(max(0.0, began + n / plan.ack_rate - time.monotonic()))
        command = mix[n % len(mix)]
        interaction, at = await send(context, command, member, channels[n % len(channels)], n)
        sent.append((command, interaction, at))
    await context.emulator.wait_for(lambda: all(i.acknowledged for _, i, _ in sent), timeout=60)
    answered = callback_times(context.emulator)
    for command, interaction, at in sent:
        figures.acks[command].append(answered[interaction.id] - at)
    # Let the jobs it started finish, so they do not spill into the next measurement.
    jobs = [(i, at) for command, i, at in sent if command in ("vary", "imagine")]
    await outcomes(context, jobs, wait=120)


async def crowd(context: Context, plan: Plan, figures: Figures) -> None:
    emulator = context.emulator
    members = [emulator.add_member(f"crowd{n}") for n in range(plan.crowd)]
    before = context.bot.cpu()
    began = time.monotonic()
    sent = []
    for n, member in enumerate(members):
        await asyncio.sleep(max(0.0, began + n / plan.crowd_rate - time.monotonic()))
        sent.append(await send(context, "imagine", member, emulator.channel_id, n))
    latencies, arrived, _ = await outcomes(context, sent, wait=plan.crowd_provider_seconds + 600)
    figures.crowd_seconds = max(arrived.values(), default=began) - began
    await asyncio.sleep(0.5)
    figures.crowd_cpu = (context.bot.cpu() - before) / max(1, len(latencies))
    figures.rss_mb = context.bot.rss_peak()
    state = await context.segmind_state()
    if context.kind == "fluxcord":
        request_of = provider_ids(context.workdir / "fluxcord.db")
        edits = progress_edits(emulator)
        figures.crowd_edits = [edits.get(key, 0) for key in arrived]
    else:
        _, request_of = outcome_times(emulator)
    for key, at in arrived.items():
        request_id = request_of.get(key)
        if request_id in state.jobs:
            figures.crowd_delays.append(at - state.jobs[request_id][1])


async def run_bot(kind: str, plan: Plan, bot_root: Path, images: list[tuple[str, bytes, str]]) -> Figures:
    figures = Figures()
    config = EmulatorConfig(latency_median=plan.provider_seconds, latency_sigma=0.0, queue_seconds=0.0)
    stages: list[tuple[str, RateLimits]] = [
        ("main", RateLimits()),
        ("crowd", RateLimits(time_scale=plan.crowd_time_scale)),
    ]
    for stage, limits in stages:
        if stage == "crowd":
            config = EmulatorConfig(latency_median=plan.crowd_provider_seconds, latency_sigma=0.0, queue_seconds=0.0)
        provider_seconds = config.latency_median
        with tempfile.TemporaryDirectory(prefix=f"overhead-{kind}-") as scratch:
            async with (
                remote_emulator(config) as (segmind, state),
                DiscordEmulator(rate_limits=limits) as emulator,
            ):
                channels = [emulator.channel_id] + [emulator.add_channel(f"art-{n}") for n in range(plan.channels - 1)]
                workdir = Path(scratch)
                async with bot_process(kind, emulator, segmind, provider_seconds, workdir, bot_root=bot_root) as bot:
                    context = Context(kind, emulator, bot, workdir, state, images)
                    if stage == "main":
                        logging.info("%s: one job at a time", kind)
                        await sequential(context, plan, figures)
                        logging.info("%s: %d members at once", kind, plan.burst)
                        await burst(context, plan, channels, figures)
                        logging.info("%s: %.0f commands a second", kind, plan.ack_rate)
                        await acknowledgements(context, plan, channels, figures)
                    else:
                        logging.info("%s: %d jobs in one channel", kind, plan.crowd)
                        await crowd(context, plan, figures)
                figures.count_429 += sum(1 for request in emulator.requests if request.status == 429)
    return figures


def ms(seconds: float) -> str:
    return "—" if seconds != seconds else f"{seconds * 1000:.0f} ms"


def report(plan: Plan, quick: bool, figures: dict[str, Figures], bot_root: Path, load: tuple[float, float]) -> str:
    bare, flux = figures["bare"], figures["fluxcord"]

    def added(attr: str, p: float) -> float:
        return percentile(getattr(flux, attr), p) - percentile(getattr(bare, attr), p)

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    flux_acks = [value for values in flux.acks.values() for value in values]
    bare_acks = [value for values in bare.acks.values() for value in values]
    worst_ack = max((percentile(values, 99) for values in flux.acks.values()), default=float("nan"))
    edits_mean = statistics.mean(flux.crowd_edits) if flux.crowd_edits else float("nan")
    edits_max = max(flux.crowd_edits, default=0)
    rows = [
        ("CPU per job, 100 members at once", ms(bare.burst_cpu), ms(flux.burst_cpu), "≤ 5 ms", flux.burst_cpu <= 0.005),
        (
            "added time per job, 100 members at once, p50",
            f"{ms(percentile(bare.burst, 50))} total",
            f"+{ms(added('burst', 50))}",
            "≤ 250 ms",
            added("burst", 50) <= 0.25,
        ),
        (
            "added time per job, 100 members at once, p99",
            f"{ms(percentile(bare.burst, 99))} total",
            f"+{ms(added('burst', 99))}",
            "≤ 500 ms",
            added("burst", 99) <= 0.5,
        ),
        (
            "added time per job, one at a time, p50",
            f"{ms(percentile(bare.sequential, 50))} total",
            f"+{ms(added('sequential', 50))}",
            "≤ 30 ms",
            added("sequential", 50) <= 0.03,
        ),
        (
            "added time per job, one at a time, p99",
            f"{ms(percentile(bare.sequential, 99))} total",
            f"+{ms(added('sequential', 99))}",
            "—",
            None,
        ),
        (
            f"acknowledgement p99, every command, {plan.ack_rate:.0f} commands a second",
            ms(percentile(bare_acks, 99)),
            f"{ms(percentile(flux_acks, 99))} (worst command {ms(worst_ack)})",
            "≤ 200 ms",
            worst_ack <= 0.2,
        ),
        *(
            (
                f"acknowledgement p99, /{command}",
                ms(percentile(bare.acks[command], 99)),
                ms(percentile(flux.acks[command], 99)),
                "≤ 200 ms",
                None,
            )
            for command in COMMANDS
        ),
        (
            f"progress edits per job, {plan.crowd} jobs in one channel (mean / max)",
            "0 (none)",
            f"{edits_mean:.2f} / {edits_max}",
            "≤ 3",
            edits_max <= 3,
        ),
        (
            "429s under the emulator's rate limits (all runs)",
            str(bare.count_429),
            str(flux.count_429),
            "0",
            flux.count_429 == 0,
        ),
        (
            f"images in the channel after the provider finished, {plan.crowd} jobs, p50",
            ms(percentile(bare.crowd_delays, 50)),
            ms(percentile(flux.crowd_delays, 50)),
            "—",
            None,
        ),
        (
            f"images in the channel after the provider finished, {plan.crowd} jobs, p99",
            ms(percentile(bare.crowd_delays, 99)),
            ms(percentile(flux.crowd_delays, 99)),
            "—",
            None,
        ),
        (f"CPU per job, {plan.crowd} jobs in one channel", ms(bare.crowd_cpu), ms(flux.crowd_cpu), "—", None),
        ("peak RSS", f"{bare.rss_mb:.0f} MB", f"{flux.rss_mb:.0f} MB", "≤ 300 MB", flux.rss_mb <= 300),
    ]
    lines = [
        "| figure | bare discord.py bot | Fluxcord | target | |",
        "|---|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} | {'' if ok is None else verdict(ok)} |" for a, b, c, d, ok in rows),
    ]
    conditions = (
        f"{'Quick' if quick else 'Full'} run; Fluxcord from `{bot_root}`. Provider time fixed at "
        f"{plan.provider_seconds:g} s (runs 1–3) and {plan.crowd_provider_seconds:g} s (run 4). Discord's rate limits "
        f"on (5 per 5 s per channel and route, 50 requests a second); in run 4 {1 / plan.crowd_time_scale:g}× "
        f"faster. Run 2: {plan.burst} members in {plan.channels} channels; run 3: {plan.ack_rate:g} commands a "
        f"second for {plan.ack_seconds:g} s; run 4: {plan.crowd} jobs in one channel, {plan.crowd_rate:g} a second. "
        f"Commands refused (Fluxcord, run 2): {flux.refused}. CPU is process time (user + system) of the bot "
        f"process. Machine: {os.cpu_count()} cores, load average {load[0]:.1f} before and {load[1]:.1f} after, "
        f"Python {platform.python_version()}."
    )
    return conditions + "\n\n" + "\n".join(lines) + "\n"


async def main_async(quick: bool, bot_root: Path, out: Path) -> str:
    plan = QUICK if quick else FULL
    images = await asyncio.to_thread(inputs)
    load_before = os.getloadavg()[0]
    figures = {kind: await run_bot(kind, plan, bot_root, images) for kind in KINDS}
    text = report(plan, quick, figures, bot_root, (load_before, os.getloadavg()[0]))
    await asyncio.to_thread(write, out, "# bench/overhead.py\n\n" + text)
    return text


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a run of a few minutes")
    parser.add_argument("--bot-root", type=Path, default=ROOT, help="the checkout whose bot/ is measured")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"where the table goes (default {RESULTS})")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # The emulator's own request log is the measurement; its access noise is not.
    logging.getLogger("emulators").setLevel(logging.WARNING)
    print(asyncio.run(main_async(args.quick, args.bot_root.resolve(), args.out)))


if __name__ == "__main__":
    main()
