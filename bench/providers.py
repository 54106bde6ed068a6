"""Provider efficiency under the default settings: the official segmind SDK against Fluxcord's engine.

Everything runs against the Segmind emulator in its own process (Redux schnell: lognormal latency, median
7.6 s), once as Segmind documents it and once with a response URL that answers 404 while a job is pending.
Fluxcord runs with its default settings (Segmind's 50 requests a minute, 10 at once), and starts with the
history of a deployment that has run a while. Time is shrunk by --scale; every figure is at full scale.

    python -m bench.providers            # full run
    python -m bench.providers --quick    # a few minutes
    python -m bench.providers --only cli # just the 12 jobs through `python -m bot vary`
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import multiprocessing
import os
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
from bot.core.requests import VaryOptions
from bot.jobs.engine import EngineConfig, JobEngine, JobOrder
from bot.jobs.gate import ProviderGate
from bot.jobs.notifier import Progress
from bot.jobs.pool import ProviderSlot
from bot.jobs.timing import PollPlanner
from bot.providers.segmind import SegmindProvider
from bot.settings import Settings
from emulators.common import EmulatorConfig
from emulators.segmind import SegmindEmulator
from storage.db import Database
from storage.jobs import JobRepo
from storage.ledger import LedgerRepo

RESULTS = Path(__file__).parent / "results" / "providers.md"
ROOT = Path(__file__).resolve().parents[1]
MEDIAN, SIGMA = 7.6, 0.25
DEFAULTS = Settings(_env_file=None)
RPM = DEFAULTS.segmind_rpm
VARIANTS = {"status": "response URL answers the status while pending", "404": "response URL answers 404 while pending"}


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


def _serve(port: int, config: EmulatorConfig, pending: str, ready: Any) -> None:
    async def main() -> None:
        emulator = ObservedSegmindEmulator(config, pending_response=pending)  # type: ignore[arg-type]
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

    @property
    def uploads(self) -> int:
        return sum(1 for route, _, status, _ in self.requests if route == "upload" and status == 200)


State = Callable[[], Awaitable[EmulatorState]]


@asynccontextmanager
async def remote_emulator(config: EmulatorConfig, pending: str = "status") -> AsyncIterator[tuple[str, State]]:
    """The emulator in its own process, as a provider is: its work never stalls the client's event loop.

    Both processes read the same system-wide monotonic clock, so their times compare.
    """
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = context.Process(target=_serve, args=(port, config, pending, ready), daemon=True)
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
    uploads: int = 0

    def full(self, seconds: float) -> float:
        return seconds / self.scale

    @property
    def per_minute(self) -> float:
        minutes = self.full(self.finished - self.started) / 60
        return self.ok / minutes if minutes else 0.0

    @property
    def ceiling(self) -> float | None:
        """Jobs a minute the budget allows at this run's mean requests per job."""
        return RPM / statistics.mean(self.requests_per_job) if self.requests_per_job else None

    @property
    def fairness(self) -> float | None:
        means = [statistics.mean(waits) for waits in self.member_waits.values() if waits]
        if len(means) < 2:
            return None
        return max(means) / statistics.median(means)


def measure(run: Run, state: EmulatorState, request_ids: set[str]) -> None:
    """Requests per job (submit, status polls, result fetch) and detection delay, from the emulator's log.

    Detection delay: from the emulator's completion of a job to the first request about it that can tell
    the client so (a status or result request arriving after completion). Uploads to Segmind Storage are
    another service and counted apart.
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
    run.uploads = state.uploads


def sdk_body(image: bytes, seed: int) -> dict[str, object]:
    import base64

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


async def run_sdk(base: str, state: State, jobs: list[int], scale: float, image: bytes, *, together: bool) -> Run:
    """`SegmindClient.submit_async(...).wait()` with the SDK's default 1 s interval: all at once (one thread
    per job) or one after another."""
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
    with ThreadPoolExecutor(max_workers=len(jobs) if together else 1) as pool:
        await asyncio.gather(*(loop.run_in_executor(pool, one, i, member) for i, member in enumerate(jobs)))
    run.finished = time.monotonic()
    measure(run, await state(), ids)
    return run


class TimingNotifier:
    """Records when each job's result was handed over."""

    def __init__(self) -> None:
        self.delivered: dict[str, float] = {}
        self.ended: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def queued(self, job: Job) -> int | None:
        return None

    def progress(self, job: Job, progress: Progress) -> None:
        return None

    async def done(self, job: Job, outputs: list[StoredOutput]) -> int | None:
        self.delivered[job.id] = time.monotonic()
        self.ended[job.id].set()
        return None

    async def failed(self, job: Job) -> int | None:
        self.delivered[job.id] = time.monotonic()
        self.ended[job.id].set()
        return None

    async def close(self) -> None:
        return None


def default_config(scale: float) -> tuple[EngineConfig, PollPlanner]:
    """The engine's default settings, with every duration scaled like the emulator's."""
    config = EngineConfig(
        retry_base_delay=DEFAULTS.retry_base_delay * scale,
        retry_max_delay=DEFAULTS.retry_max_delay * scale,
        job_deadline=DEFAULTS.job_deadline * scale,
        result_grace=EngineConfig().result_grace * scale,
        expired_grace=EngineConfig().expired_grace * scale,
        poll_min_interval=DEFAULTS.poll_min_interval * scale,
        poll_max_interval=DEFAULTS.poll_max_interval * scale,
    )
    expected = {model: seconds * scale for model, seconds in DEFAULTS.expected_seconds.items()}
    return config, PollPlanner(config.poll_min_interval, config.poll_max_interval, defaults=expected)


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
    together: bool = True,
) -> tuple[dict[str, tuple[int, float]], TimingNotifier, dict[str, Job], float, float]:
    """Run one batch of jobs through a fresh engine on `db_path`; returns what each job did and when."""
    db = await Database.open(db_path)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            notifier = TimingNotifier()
            config, planner = default_config(scale)
            engine = JobEngine(
                jobs=JobRepo(db, LedgerRepo(db)),
                providers=[
                    ProviderSlot(
                        SegmindProvider(http, api_key="SG_bench", base_url=base),
                        ProviderGate(concurrency=concurrency, rpm=rpm, window=60 * scale),
                    )
                ],
                notifier=notifier,
                prices=PriceList(),
                config=config,
                planner=planner,
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
                if not together:
                    await notifier.ended[job.id].wait()
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
    state: State,
    members: list[int],
    scale: float,
    image: bytes,
    *,
    db_path: Path,
    together: bool,
) -> Run:
    """Fluxcord's engine with the real Segmind adapter, a real SQLite file and the default settings."""
    run = Run("Fluxcord engine", scale)
    submitted, notifier, jobs, run.started, run.finished = await engine_batch(
        db_path,
        base,
        members,
        scale,
        image,
        rpm=RPM,
        concurrency=DEFAULTS.segmind_concurrency,
        prefix="job",
        together=together,
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
    """A deployment that has run a while has history to learn from: give this one the same, unthrottled
    (from other draws of the same latency distribution than the measured jobs get)."""
    async with remote_emulator(emulator_config(scale, None, seed=1000)) as (base, _):
        await engine_batch(
            db_path, base, [10**6 + i for i in range(jobs)], scale, image, rpm=None, concurrency=50, prefix="warm"
        )


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def emulator_config(scale: float, rpm: int | None, seed: int = 0) -> EmulatorConfig:
    return EmulatorConfig(
        latency_median=MEDIAN, latency_sigma=SIGMA, queue_seconds=0.2, time_scale=scale, rpm=rpm, rng_seed=seed
    )


# ----------------------------------------------------------------------------- the CLI, one job at a time


@dataclass
class CliRun:
    """Jobs run one after another, each by its own `python -m bot vary` process."""

    run: Run
    exit_codes: list[int]


def cli_env(base: str, db_path: Path, scale: float) -> dict[str, str]:
    """The environment of an operator who set only the key, the base URL and the database (plus, when time is
    shrunk, every duration shrunk alike)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXCORD_") and not k.endswith("_API_KEY")}
    env.update(
        FLUXCORD_SEGMIND_BASE_URL=base,
        FLUXCORD_SEGMIND_API_KEY="SG_bench",
        FLUXCORD_DATABASE=str(db_path),
        PYTHONUNBUFFERED="1",
    )
    if scale != 1.0:
        env.update(
            FLUXCORD_POLL_MIN_INTERVAL=str(DEFAULTS.poll_min_interval * scale),
            FLUXCORD_POLL_MAX_INTERVAL=str(DEFAULTS.poll_max_interval * scale),
            FLUXCORD_RETRY_BASE_DELAY=str(DEFAULTS.retry_base_delay * scale),
            FLUXCORD_RETRY_MAX_DELAY=str(DEFAULTS.retry_max_delay * scale),
            FLUXCORD_JOB_DEADLINE=str(DEFAULTS.job_deadline * scale),
            FLUXCORD_EXPECTED_SECONDS=json.dumps({m.value: s * scale for m, s in DEFAULTS.expected_seconds.items()}),
        )
    return env


async def cli_jobs(base: str, state: State, count: int, scale: float, folder: Path) -> CliRun:
    """`count` jobs through `python -m bot vary`, one after another, on one database."""
    picture = folder / "photo.jpg"
    picture.write_bytes(input_image())
    env = cli_env(base, folder / "cli.db", scale)
    run = Run("`python -m bot vary`", scale)
    codes: list[int] = []
    before = set((await state()).jobs)
    run.started = time.monotonic()
    for index in range(count):
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "bot", "vary", str(picture), "--megapixels", "0.25", "--seed", str(index + 1)),
            *("--out", str(folder / "out")),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        codes.append(await process.wait())
    run.finished = time.monotonic()
    run.ok = codes.count(0)
    run.failed = count - run.ok
    seen = await state()
    measure(run, seen, set(seen.jobs) - before)
    return CliRun(run, codes)


# ----------------------------------------------------------------------------- scenarios and the report


async def scenario_one_at_a_time(
    scale: float, jobs: int, image: bytes, warmup: int, folder: Path
) -> dict[str, tuple[Run, Run]]:
    members = [0] * jobs
    runs: dict[str, tuple[Run, Run]] = {}
    for pending in VARIANTS:
        async with remote_emulator(emulator_config(scale, RPM), pending) as (base, state):
            sdk = await run_sdk(base, state, members, scale, image, together=False)
        db_path = folder / f"alone-{pending}.db"
        await warm_up(db_path, scale, image, warmup)
        async with remote_emulator(emulator_config(scale, RPM), pending) as (base, state):
            engine = await run_engine(base, state, members, scale, image, db_path=db_path, together=False)
        runs[pending] = (sdk, engine)
    return runs


async def scenario_budget(
    scale: float, jobs: int, members: int, image: bytes, warmup: int, folder: Path
) -> dict[str, tuple[Run | None, Run]]:
    owners = [i % members for i in range(jobs)]
    runs: dict[str, tuple[Run | None, Run]] = {}
    for pending in VARIANTS:
        sdk = None
        if pending == "status":
            async with remote_emulator(emulator_config(scale, RPM), pending) as (base, state):
                sdk = await run_sdk(base, state, owners, scale, image, together=True)
        db_path = folder / f"budget-{pending}.db"
        await warm_up(db_path, scale, image, warmup)
        async with remote_emulator(emulator_config(scale, RPM), pending) as (base, state):
            engine = await run_engine(base, state, owners, scale, image, db_path=db_path, together=True)
        runs[pending] = (sdk, engine)
    return runs


async def scenario_cli(scale: float, jobs: int, seeds: Sequence[int], folder: Path) -> list[tuple[int, CliRun]]:
    """Rounds of `jobs` CLI jobs, each on a fresh database and an emulator seeded differently: twelve draws
    of a lognormal are a small sample, so each round is its own row."""
    rounds = []
    for seed in seeds:
        round_folder = folder / f"cli-{seed}"
        round_folder.mkdir()
        async with remote_emulator(emulator_config(scale, RPM, seed), "404") as (base, state):
            rounds.append((seed, await cli_jobs(base, state, jobs, scale, round_folder)))
    return rounds


def _median(values: Sequence[float], digits: int = 0) -> str:
    return f"{statistics.median(values):.{digits}f}" if values else "—"


def alone_table(runs: dict[str, tuple[Run, Run]], jobs: int) -> list[str]:
    lines = [
        f"**One job at a time, {jobs} jobs, default settings ({RPM} requests/minute)**",
        "",
        "| Segmind | client | jobs ok | requests/job median | p95 | detection delay median | p90 | uploads |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pending, pair in runs.items():
        for run in pair:
            lines.append(
                f"| {VARIANTS[pending]} | {run.client} | {run.ok}/{run.ok + run.failed} | "
                f"{_median(run.requests_per_job)} | {pct(run.requests_per_job, 0.95):.0f} | "
                f"{_median(run.detection, 2)} s | {pct(run.detection, 0.9):.2f} s | {run.uploads} |"
            )
    return lines


def budget_table(runs: dict[str, tuple[Run | None, Run]], jobs: int, members: int) -> list[str]:
    lines = [
        f"**{RPM} requests/minute, {jobs} jobs from {members} members, all submitted at once**",
        "",
        "| Segmind | client | jobs ok | jobs/min | ceiling (requests/job) | of ceiling | 429s "
        "| requests/job median | worst / median member's wait |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for pending, (sdk, engine) in runs.items():
        for run in (sdk, engine):
            if run is None:
                continue
            ceiling = run.ceiling
            share = f"{run.per_minute / ceiling:.0%}" if ceiling else "—"
            mean = f"{statistics.mean(run.requests_per_job):.2f}" if run.requests_per_job else "—"
            fairness = f"{run.fairness:.2f}" if run.fairness is not None else "—"
            lines.append(
                f"| {VARIANTS[pending]} | {run.client} | {run.ok}/{run.ok + run.failed} | {run.per_minute:.1f} | "
                f"{f'{ceiling:.1f}' if ceiling else '—'} ({mean}) | {share} | {run.count_429} | "
                f"{_median(run.requests_per_job)} | {fairness} |"
            )
    return lines


def cli_table(rounds: list[tuple[int, CliRun]], scale: float) -> list[str]:
    jobs = len(rounds[0][1].exit_codes) if rounds else 0
    lines = [
        f"**{jobs} jobs one after another through `python -m bot vary` (a process each, a fresh database), "
        f"default settings, response URL answering 404 while pending, time scale {scale}**",
        "",
        "| emulator seed | jobs ok | requests/job median (submit + status polls + result) | p95 "
        "| detection delay median | p90 | uploads |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = [(str(seed), cli.run, len(cli.exit_codes)) for seed, cli in rounds]
    if len(rounds) > 1:
        pooled = Run("all", scale)
        for _, cli in rounds:
            pooled.ok += cli.run.ok
            pooled.requests_per_job += cli.run.requests_per_job
            pooled.detection += cli.run.detection
            pooled.uploads += cli.run.uploads
        rows.append(("all rounds", pooled, sum(len(cli.exit_codes) for _, cli in rounds)))
    for name, run, count in rows:
        lines.append(
            f"| {name} | {run.ok}/{count} | {_median(run.requests_per_job, 1)} | "
            f"{pct(run.requests_per_job, 0.95):.0f} | {_median(run.detection, 2)} s | "
            f"{pct(run.detection, 0.9):.2f} s | {run.uploads} |"
        )
    return lines


def header(args: argparse.Namespace) -> str:
    return (
        f"Segmind emulator in its own process, FLUX.1 Redux schnell 0.25 MP, latency lognormal (median {MEDIAN} s, "
        f"sigma {SIGMA}) + 0.2 s queue, time scale {args.scale} (figures at full scale). "
        f"{'Quick run.' if args.quick else 'Full run.'} Uploads go to Segmind Storage (another service, not "
        "counted against the request budget), once per image and process."
    )


async def main(args: argparse.Namespace) -> None:
    image = input_image()
    sections: list[list[str]] = []
    with tempfile.TemporaryDirectory() as folder:
        if args.only in (None, "alone"):
            runs_alone = await scenario_one_at_a_time(args.scale, args.jobs, image, args.warmup, Path(folder))
            sections.append(alone_table(runs_alone, args.jobs))
        if args.only in (None, "budget"):
            runs = await scenario_budget(args.scale, args.budget_jobs, args.members, image, args.warmup, Path(folder))
            sections.append(budget_table(runs, args.budget_jobs, args.members))
        if args.only in (None, "cli"):
            rounds = await scenario_cli(args.cli_scale, args.cli_jobs, args.cli_seeds, Path(folder))
            sections.append(cli_table(rounds, args.cli_scale))
    text = "\n\n".join([header(args), *("\n".join(lines) for lines in sections)])
    print(text)
    if args.only is None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text + "\n")
        print(f"\nwritten to {RESULTS}")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run (a few minutes)")
    parser.add_argument("--scale", type=float, default=None, help="time scale (default 0.5, quick 0.2)")
    parser.add_argument("--only", choices=("alone", "budget", "cli"), help="run one scenario (results not written)")
    args = parser.parse_args(argv)
    if args.scale is None:
        args.scale = 0.2 if args.quick else 0.5
    args.jobs = 12 if args.quick else 40
    args.budget_jobs, args.members = (100, 20) if args.quick else (200, 20)
    args.warmup = 100 if args.quick else 200
    args.cli_jobs = 12
    args.cli_seeds = (0,) if args.quick else (0, 1, 2)
    # Each CLI job is a process start on top of the job: real time, so the full run keeps full scale.
    args.cli_scale = 0.25 if args.quick else 1.0
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(parse(sys.argv[1:])))
