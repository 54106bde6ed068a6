"""Provider efficiency: the official segmind SDK's submit_async().wait() against Fluxcord's engine.

Both run in the same process against the same Segmind emulator (Redux schnell: lognormal latency,
median 7.6 s). Time is shrunk by --scale; every figure is reported at full scale.

    python -m bench.providers            # full run
    python -m bench.providers --quick    # under two minutes
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import logging
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from PIL import Image

from bot.core.images import normalize_input
from bot.core.jobs import Job, StoredOutput
from bot.core.limits import UNLIMITED, Policy
from bot.core.pricing import PriceList
from bot.core.requests import ModelId, VaryOptions
from bot.emulators.common import EmulatorConfig
from bot.emulators.segmind import SegmindEmulator
from bot.jobs.engine import EngineConfig, JobEngine, JobOrder
from bot.jobs.gate import ProviderGate
from bot.jobs.notifier import Progress
from bot.jobs.pool import ProviderSlot
from bot.jobs.timing import PollPlanner
from bot.providers.segmind import SegmindProvider
from storage.db import Database
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo

RESULTS = Path(__file__).parent / "results" / "providers.md"
MEDIAN, SIGMA = 7.6, 0.25


def input_image() -> bytes:
    image = Image.new("RGB", (640, 480), (40, 90, 160))
    for x in range(640):
        image.putpixel((x, 240), (x % 256, 200, 40))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return normalize_input(buffer.getvalue()).data


@dataclass
class Run:
    """One client's run of one workload, with times in real seconds."""

    client: str
    scale: float
    started: float = 0.0
    finished: float = 0.0
    ok: int = 0
    failed: int = 0
    member_waits: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    requests_per_job: list[int] = field(default_factory=list)
    detection: list[float] = field(default_factory=list)
    count_429: int = 0

    def full(self, seconds: float) -> float:
        return seconds / self.scale

    @property
    def per_minute(self) -> float:
        minutes = self.full(self.finished - self.started) / 60
        return self.ok / minutes if minutes else 0.0

    @property
    def fairness(self) -> float | None:
        means = [statistics.mean(waits) for waits in self.member_waits.values() if waits]
        if len(means) < 2:
            return None
        return max(means) / statistics.median(means)


def measure(run: Run, emulator: SegmindEmulator, request_ids: set[str]) -> None:
    """Requests per job and detection delay, read off the emulator's own log."""
    per_job: dict[str, int] = defaultdict(int)
    first_result: dict[str, float] = {}
    for request in emulator.requests:
        if request.route == "submit" and request.status == 429:
            continue
        for request_id in request_ids & set(request.path.split("/")):
            if request.route in ("status", "result"):
                per_job[request_id] += 1
            if request.route == "result" and request_id not in first_result:
                first_result[request_id] = request.at
    for request_id in request_ids:
        job = emulator.jobs.get(request_id)
        if job is None or request_id not in first_result:
            continue
        run.requests_per_job.append(per_job[request_id] + 1)  # + the submit
        run.detection.append(run.full(first_result[request_id] - job.completes_at))
    run.count_429 = emulator.count_429


def sdk_body(image: bytes, seed: int) -> dict[str, object]:
    return {
        "redux_image": "data:image/jpeg;base64," + base64.b64encode(image).decode(),
        "aspect_ratio": "1:1", "megapixels": "0.25", "num_outputs": 1, "num_inference_steps": 4,
        "seed": seed, "output_format": "webp", "output_quality": 80, "disable_safety_checker": False,
    }


async def run_sdk(emulator: SegmindEmulator, jobs: list[int], scale: float, image: bytes) -> Run:
    """One thread per job, each `SegmindClient.submit_async(...).wait()` with the SDK's default 1 s interval."""
    from segmind import SegmindClient, SegmindError

    run = Run("segmind SDK (1 s polling)", scale)
    ids: set[str] = set()

    def one(index: int, member: int) -> None:
        client = SegmindClient(api_key="SG_bench", base_url=f"{emulator.base_url}/v1", timeout=30)
        began = time.monotonic()
        try:
            job = client.submit_async("flux-redux-schnell", **sdk_body(image, index + 1))
            ids.add(job.request_id)
            job.wait(timeout=600 * scale, interval=1.0 * scale)
            run.ok += 1
            run.member_waits[member].append(run.full(time.monotonic() - began))
        except SegmindError:
            run.failed += 1
        finally:
            client._client.close()

    loop = asyncio.get_running_loop()
    run.started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        await asyncio.gather(*(loop.run_in_executor(pool, one, i, member) for i, member in enumerate(jobs)))
    run.finished = time.monotonic()
    measure(run, emulator, ids)
    return run


class TimingNotifier:
    """Records when each job's result was handed over."""

    def __init__(self) -> None:
        self.delivered: dict[str, float] = {}

    async def progress(self, job: Job, progress: Progress) -> None:
        return None

    async def done(self, job: Job, outputs: list[StoredOutput]) -> None:
        self.delivered[job.id] = time.monotonic()

    async def failed(self, job: Job) -> None:
        self.delivered[job.id] = time.monotonic()


async def run_engine(
    emulator: SegmindEmulator, jobs: list[int], scale: float, image: bytes, *, rpm: int | None, concurrency: int,
    warmup: int,
) -> Run:
    """Fluxcord's engine with the real Segmind adapter, a real SQLite file, every knob scaled like the emulator."""
    run = Run("Fluxcord engine", scale)
    with tempfile.TemporaryDirectory() as folder:
        db = await Database.open(Path(folder) / "bench.db")
        async with aiohttp.ClientSession() as http:
            ledger = LedgerRepo(db)
            notifier = TimingNotifier()
            engine = JobEngine(
                jobs=JobRepo(db, ledger),
                providers=[ProviderSlot(SegmindProvider(http, api_key="SG_bench", base_url=emulator.base_url),
                                        ProviderGate(concurrency=concurrency, rpm=rpm, window=60 * scale))],
                notifier=notifier,
                prices=PriceList(),
                config=EngineConfig(retry_base_delay=1.0 * scale, retry_max_delay=60 * scale,
                                    poll_min_interval=0.25 * scale, poll_max_interval=3.0 * scale),
                planner=PollPlanner(0.25 * scale, 3.0 * scale,
                                    defaults={model: seconds * scale for model, seconds in
                                              {ModelId.REDUX_SCHNELL: MEDIAN}.items()}),
            )
            normalized = normalize_input(image)
            spec = VaryOptions.parse(megapixels="0.25", aspect_ratio="1:1")
            policy = Policy(daily_allowance=10**6, limits=UNLIMITED)
            await engine.start(recover=False)
            # A deployment that has run a while has history to learn from; so does this one.
            for i in range(warmup):
                await engine.submit(JobOrder(request_id=f"warm{i}", guild_id=1, user_id=10**6 + i,
                                             spec=spec.resolve(normalized.source_size, seed=10**6 + i),
                                             input_image=normalized, free=True), policy)
            await engine.run_until_idle()
            warm_ids = set(emulator.jobs)
            submitted: dict[str, tuple[int, float]] = {}
            run.started = time.monotonic()
            for i, member in enumerate(jobs):
                job = await engine.submit(JobOrder(request_id=f"job{i}", guild_id=1, user_id=member,
                                                   spec=spec.resolve(normalized.source_size, seed=i + 1),
                                                   input_image=normalized, free=True), policy)
                submitted[job.id] = (member, time.monotonic())
            await engine.run_until_idle()
            run.finished = time.monotonic()
            ids: set[str] = set()
            for job_id, (member, began) in submitted.items():
                job = await engine.jobs.get(job_id)
                if job is not None and job.state.value == "succeeded":
                    run.ok += 1
                    run.member_waits[member].append(run.full(notifier.delivered[job_id] - began))
                    if job.provider_job_id:
                        ids.add(job.provider_job_id)
                else:
                    run.failed += 1
            await engine.stop()
        await db.close()
    count_429 = emulator.count_429
    measure(run, emulator, ids - warm_ids)
    run.count_429 = count_429
    return run


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def emulator_config(scale: float, rpm: int | None) -> EmulatorConfig:
    return EmulatorConfig(latency_median=MEDIAN, latency_sigma=SIGMA, queue_seconds=0.2, time_scale=scale, rpm=rpm,
                          rng_seed=7)


async def scenario_latency(scale: float, jobs: int, image: bytes) -> tuple[Run, Run]:
    members = list(range(jobs))
    async with SegmindEmulator(emulator_config(scale, None)) as emulator:
        sdk = await run_sdk(emulator, members, scale, image)
    async with SegmindEmulator(emulator_config(scale, None)) as emulator:
        engine = await run_engine(emulator, members, scale, image, rpm=None, concurrency=jobs, warmup=20)
    return sdk, engine


async def scenario_budget(scale: float, jobs: int, members: int, image: bytes) -> tuple[Run, Run]:
    owners = [i % members for i in range(jobs)]
    async with SegmindEmulator(emulator_config(scale, 50)) as emulator:
        sdk = await run_sdk(emulator, owners, scale, image)
    async with SegmindEmulator(emulator_config(scale, 50)) as emulator:
        # The history comes from unthrottled jobs; it is the provider's timing, not the budget's.
        emulator.config.rpm = None
        await warm(emulator, scale, image)
        emulator.config.rpm = 50
        engine = await run_engine(emulator, owners, scale, image, rpm=50, concurrency=10, warmup=0)
    return sdk, engine


async def warm(emulator: SegmindEmulator, scale: float, image: bytes) -> None:
    """Nothing: kept for symmetry; the budget run learns from its own first jobs."""
    return None


def table(latency: tuple[Run, Run], budget: tuple[Run, Run], args: argparse.Namespace) -> str:
    (sdk_a, eng_a), (sdk_b, eng_b) = latency, budget
    lines = [
        f"Segmind emulator, FLUX.1 Redux schnell, latency lognormal (median {MEDIAN} s, sigma {SIGMA}), "
        f"time scale {args.scale} (figures at full scale). {'Quick run.' if args.quick else 'Full run.'}",
        "",
        f"**No request budget, {len(sdk_a.requests_per_job) or args.jobs} concurrent jobs**",
        "",
        "| client | jobs ok | requests/job (median) | requests/job (p95) | detection delay median | detection delay p95 |",
        "|---|---|---|---|---|---|",
    ]
    for run in (sdk_a, eng_a):
        lines.append(
            f"| {run.client} | {run.ok}/{run.ok + run.failed} | {statistics.median(run.requests_per_job):.0f} | "
            f"{pct(run.requests_per_job, 0.95):.0f} | {statistics.median(run.detection):.2f} s | "
            f"{pct(run.detection, 0.95):.2f} s |"
        )
    lines += [
        "",
        f"**50 requests per minute, {args.budget_jobs} jobs from {args.members} members, all submitted at once**",
        "",
        "| client | jobs ok | completed jobs/min | 429s | requests/job (median) | worst member's wait / median member's |",
        "|---|---|---|---|---|---|",
    ]
    for run in (sdk_b, eng_b):
        fairness = f"{run.fairness:.2f}" if run.fairness is not None else "—"
        median_requests = f"{statistics.median(run.requests_per_job):.0f}" if run.requests_per_job else "—"
        lines.append(
            f"| {run.client} | {run.ok}/{run.ok + run.failed} | {run.per_minute:.1f} | {run.count_429} | "
            f"{median_requests} | {fairness} |"
        )
    ratio = eng_b.per_minute / sdk_b.per_minute if sdk_b.per_minute else float("inf")
    lines += ["", f"Completed jobs per minute under the budget: Fluxcord {ratio:.1f}× the SDK's."]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    image = input_image()
    latency = await scenario_latency(args.scale, args.jobs, image)
    budget = await scenario_budget(args.scale, args.budget_jobs, args.members, image)
    text = table(latency, budget, args)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")
    print(f"\nwritten to {RESULTS}")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run (under two minutes)")
    parser.add_argument("--scale", type=float, default=None, help="time scale (default 0.1, quick 0.05)")
    args = parser.parse_args(argv)
    if args.scale is None:
        args.scale = 0.05 if args.quick else 0.1
    args.jobs = 50
    args.budget_jobs, args.members = (100, 20) if args.quick else (200, 20)
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(parse(sys.argv[1:])))
