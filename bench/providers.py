"""Provider efficiency: the official segmind SDK's submit_async().wait() against Fluxcord's engine.

Both run against the Segmind emulator in its own process (Redux schnell: lognormal latency, median
7.6 s). Time is shrunk by --scale; every figure is reported at full scale. Fluxcord's engine starts
with the history of a deployment that has run a while (--warmup unthrottled jobs on the same database).

    python -m bench.providers            # full run
    python -m bench.providers --quick    # under two minutes
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import logging
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from PIL import Image

from bot.core.images import normalize_input
from bot.core.jobs import Job, StoredOutput
from bot.core.limits import UNLIMITED, Policy
from bot.core.pricing import PriceList
from bot.core.requests import ModelId, VaryOptions
from bot.jobs.engine import EngineConfig, JobEngine, JobOrder
from bot.jobs.gate import ProviderGate
from bot.jobs.notifier import Progress
from bot.jobs.pool import ProviderSlot
from bot.jobs.timing import PollPlanner
from bot.providers.segmind import SegmindProvider
from emulators.common import EmulatorConfig
from emulators.segmind import SegmindEmulator
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


class ObservedSegmindEmulator(SegmindEmulator):
    """The Segmind emulator plus a route that reports its request log and job timings to the benchmark."""

    def build_routes(self, app: web.Application) -> None:
        super().build_routes(app)
        app.router.add_get("/_bench/state", self._state)

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": [[r.route, r.path, r.status, r.at] for r in self.requests],
                "jobs": {job_id: [job.submitted_at, job.completes_at] for job_id, job in self.jobs.items()},
            }
        )


def _serve(port: int, config: EmulatorConfig, ready: Any) -> None:
    async def main() -> None:
        emulator = ObservedSegmindEmulator(config)
        await emulator.start(port=port)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


@dataclass
class EmulatorState:
    """What the emulator saw: (route, path, status, arrival) per request, (submitted, completes) per job."""

    requests: list[tuple[str, str, int, float]]
    jobs: dict[str, tuple[float, float]]

    @property
    def count_429(self) -> int:
        return sum(1 for _, _, status, _ in self.requests if status == 429)


@asynccontextmanager
async def remote_emulator(config: EmulatorConfig) -> AsyncIterator[tuple[str, Callable[[], Awaitable[EmulatorState]]]]:
    """The emulator in its own process, as a provider is: its work never stalls the client's event loop.

    Both processes read the same system-wide monotonic clock, so their times compare.
    """
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = context.Process(target=_serve, args=(port, config, ready), daemon=True)
    process.start()
    if not await asyncio.to_thread(ready.wait, 30):
        raise RuntimeError("the emulator did not start")
    base = f"http://127.0.0.1:{port}"

    async def state() -> EmulatorState:
        async with aiohttp.ClientSession() as http, http.get(f"{base}/_bench/state") as response:
            body = await response.json()
        return EmulatorState([tuple(r) for r in body["requests"]], {k: tuple(v) for k, v in body["jobs"].items()})

    try:
        yield base, state
    finally:
        process.terminate()
        process.join(10)


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


def measure(run: Run, state: EmulatorState, request_ids: set[str]) -> None:
    """Requests per job and detection delay, read off the emulator's own log.

    Detection delay: from the emulator's completion of a job to the first request about it that can
    tell the client so (a status or result request arriving after completion).
    """
    per_job: dict[str, int] = defaultdict(int)
    seen: dict[str, float] = {}
    for route, path, _, at in state.requests:
        if route not in ("status", "result"):
            continue
        for request_id in request_ids & set(path.split("/")):
            per_job[request_id] += 1
            if request_id not in seen and at >= state.jobs[request_id][1]:
                seen[request_id] = at
    for request_id in request_ids:
        if request_id not in state.jobs or request_id not in seen:
            continue
        run.requests_per_job.append(per_job[request_id] + 1)  # + the submit
        run.detection.append(run.full(seen[request_id] - state.jobs[request_id][1]))
    run.count_429 = state.count_429


def sdk_body(image: bytes, seed: int) -> dict[str, object]:
    return {
        "redux_image": "data:image/jpeg;base64," + base64.b64encode(image).decode(),
        "aspect_ratio": "1:1",
        "megapixels": "0.25",
        "num_outputs": 1,
        "num_inference_steps": 4,
        "seed": seed,
        "output_format": "webp",
        "output_quality": 80,
        "disable_safety_checker": False,
    }


async def run_sdk(
    base: str, state: Callable[[], Awaitable[EmulatorState]], jobs: list[int], scale: float, image: bytes
) -> Run:
    """One thread per job, each `SegmindClient.submit_async(...).wait()` with the SDK's default 1 s interval."""
    from segmind import SegmindClient, SegmindError

    run = Run("segmind SDK (1 s polling)", scale)
    ids: set[str] = set()

    def one(index: int, member: int) -> None:
        client = SegmindClient(api_key="SG_bench", base_url=f"{base}/v1", timeout=30)
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
    measure(run, await state(), ids)
    return run


class TimingNotifier:
    """Records when each job's result was handed over."""

    def __init__(self) -> None:
        self.delivered: dict[str, float] = {}

    async def queued(self, job: Job) -> int | None:
        return None

    def progress(self, job: Job, progress: Progress) -> None:
        return None

    async def done(self, job: Job, outputs: list[StoredOutput]) -> int | None:
        self.delivered[job.id] = time.monotonic()
        return None

    async def failed(self, job: Job) -> int | None:
        self.delivered[job.id] = time.monotonic()
        return None

    async def close(self) -> None:
        return None


async def engine_batch(
    db_path: Path,
    base: str,
    members: list[int],
    scale: float,
    image: bytes,
    *,
    rpm: int | None,
    concurrency: int,
    prefix: str,
) -> tuple[dict[str, tuple[int, float]], TimingNotifier, dict[str, Job], float, float]:
    """Run one batch of jobs through a fresh engine on `db_path`; returns what each job did and when."""
    db = await Database.open(db_path)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            ledger = LedgerRepo(db)
            notifier = TimingNotifier()
            engine = JobEngine(
                jobs=JobRepo(db, ledger),
                providers=[
                    ProviderSlot(
                        SegmindProvider(http, api_key="SG_bench", base_url=base),
                        ProviderGate(concurrency=concurrency, rpm=rpm, window=60 * scale),
                    )
                ],
                notifier=notifier,
                prices=PriceList(),
                config=EngineConfig(
                    retry_base_delay=1.0 * scale,
                    retry_max_delay=60 * scale,
                    poll_min_interval=0.25 * scale,
                    poll_max_interval=3.0 * scale,
                ),
                planner=PollPlanner(0.25 * scale, 3.0 * scale, defaults={model: MEDIAN * scale for model in ModelId}),
            )
            normalized = normalize_input(image)
            options = VaryOptions.parse(megapixels="0.25", aspect_ratio="1:1")
            policy = Policy(daily_allowance=10**6, limits=UNLIMITED)
            await engine.start(recover=False)
            submitted: dict[str, tuple[int, float]] = {}
            started = time.monotonic()
            for i, member in enumerate(members):
                job = await engine.submit(
                    JobOrder(
                        request_id=f"{prefix}{i}",
                        guild_id=1,
                        user_id=member,
                        spec=options.resolve(normalized.source_size, seed=i + 1),
                        input_image=normalized,
                        free=True,
                    ),
                    policy,
                )
                submitted[job.id] = (member, time.monotonic())
            await engine.run_until_idle()
            finished = time.monotonic()
            jobs: dict[str, Job] = {}
            for job_id in submitted:
                found = await engine.jobs.get(job_id)
                if found is not None:
                    jobs[job_id] = found
            await engine.stop()
    finally:
        await db.close()
    return submitted, notifier, jobs, started, finished


async def run_engine(
    base: str,
    state: Callable[[], Awaitable[EmulatorState]],
    members: list[int],
    scale: float,
    image: bytes,
    *,
    rpm: int | None,
    concurrency: int,
    db_path: Path,
) -> Run:
    """Fluxcord's engine with the real Segmind adapter, a real SQLite file, every knob scaled like the emulator."""
    run = Run("Fluxcord engine", scale)
    submitted, notifier, jobs, run.started, run.finished = await engine_batch(
        db_path, base, members, scale, image, rpm=rpm, concurrency=concurrency, prefix="job"
    )
    ids: set[str] = set()
    for job_id, (member, began) in submitted.items():
        job = jobs.get(job_id)
        if job is not None and job.state.value == "succeeded":
            run.ok += 1
            run.member_waits[member].append(run.full(notifier.delivered[job_id] - began))
            ids.add(job.provider_job_id or "")
        else:
            run.failed += 1
    measure(run, await state(), ids)
    return run


async def warm_up(db_path: Path, scale: float, image: bytes, jobs: int) -> None:
    """A deployment that has run a while has history to learn from: give this one the same, unthrottled."""
    async with remote_emulator(emulator_config(scale, None)) as (base, _):
        await engine_batch(
            db_path, base, [10**6 + i for i in range(jobs)], scale, image, rpm=None, concurrency=50, prefix="warm"
        )


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def emulator_config(scale: float, rpm: int | None) -> EmulatorConfig:
    return EmulatorConfig(latency_median=MEDIAN, latency_sigma=SIGMA, queue_seconds=0.2, time_scale=scale, rpm=rpm)


async def scenario_latency(scale: float, jobs: int, image: bytes, warmup: int, folder: Path) -> tuple[Run, Run]:
    members = list(range(jobs))
    async with remote_emulator(emulator_config(scale, None)) as (base, state):
        sdk = await run_sdk(base, state, members, scale, image)
    db_path = folder / "latency.db"
    await warm_up(db_path, scale, image, warmup)
    async with remote_emulator(emulator_config(scale, None)) as (base, state):
        engine = await run_engine(base, state, members, scale, image, rpm=None, concurrency=jobs, db_path=db_path)
    return sdk, engine


async def scenario_budget(
    scale: float, jobs: int, members: int, image: bytes, warmup: int, folder: Path
) -> tuple[Run, Run]:
    owners = [i % members for i in range(jobs)]
    async with remote_emulator(emulator_config(scale, 50)) as (base, state):
        sdk = await run_sdk(base, state, owners, scale, image)
    db_path = folder / "budget.db"
    await warm_up(db_path, scale, image, warmup)
    async with remote_emulator(emulator_config(scale, 50)) as (base, state):
        engine = await run_engine(base, state, owners, scale, image, rpm=50, concurrency=10, db_path=db_path)
    return sdk, engine


def table(latency: tuple[Run, Run], budget: tuple[Run, Run], args: argparse.Namespace) -> str:
    (sdk_a, eng_a), (sdk_b, eng_b) = latency, budget
    lines = [
        f"Segmind emulator, FLUX.1 Redux schnell, latency lognormal (median {MEDIAN} s, sigma {SIGMA}), "
        f"time scale {args.scale} (figures at full scale). {'Quick run.' if args.quick else 'Full run.'}",
        "",
        f"**No request budget, {len(sdk_a.requests_per_job) or args.jobs} concurrent jobs**",
        "",
        "| client | jobs ok | requests/job median | requests/job p95 | detection delay median | detection delay p95 |",
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
        "| client | jobs ok | completed jobs/min | 429s | requests/job median | worst / median member's wait |",
        "|---|---|---|---|---|---|",
    ]
    for run in (sdk_b, eng_b):
        fairness = f"{run.fairness:.2f}" if run.fairness is not None else "—"
        median_requests = f"{statistics.median(run.requests_per_job):.0f}" if run.requests_per_job else "—"
        lines.append(
            f"| {run.client} | {run.ok}/{run.ok + run.failed} | {run.per_minute:.1f} | {run.count_429} | "
            f"{median_requests} | {fairness} |"
        )
    if sdk_b.per_minute:
        verdict = f"Fluxcord {eng_b.per_minute / sdk_b.per_minute:.1f}× the SDK's"
    else:
        verdict = "the SDK completed none (it raises on the first 429; nothing in it waits or retries)"
    lines += ["", f"Completed jobs per minute under the budget: {verdict}."]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    image = input_image()
    with tempfile.TemporaryDirectory() as folder:
        latency = await scenario_latency(args.scale, args.jobs, image, args.warmup, Path(folder))
        budget = await scenario_budget(args.scale, args.budget_jobs, args.members, image, args.warmup, Path(folder))
    text = table(latency, budget, args)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n")
    print(f"\nwritten to {RESULTS}")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run (under two minutes)")
    parser.add_argument("--scale", type=float, default=None, help="time scale (default 0.5, quick 0.2)")
    args = parser.parse_args(argv)
    if args.scale is None:
        args.scale = 0.2 if args.quick else 0.5
    args.jobs = 50
    args.budget_jobs, args.members = (100, 20) if args.quick else (200, 20)
    args.warmup = 100 if args.quick else 200
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(parse(sys.argv[1:])))
