"""Pieces every provider emulator shares: configuration, fault injection, a request log, an RPM limiter,
forced outcomes, the per-job decision, input readers and the rendered-file cache."""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
import time
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, ClassVar, Final, Generic, NamedTuple, Protocol, Self, TypeVar

from aiohttp import web

from emulators.render import CONTENT_TYPES, render_image
from emulators.sizes import Megapixels

ANY_ROUTE = "any"
OTHER_ROUTE = "other"
#: in a fault's body, replaced by the API key the faulted request carried (a provider echoing a key back)
API_KEY_PLACEHOLDER = "{api_key}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ROUTE_KEY = web.RequestKey("route", str)


@dataclass
class EmulatorConfig:
    """How an emulator behaves. Every duration is in full-scale seconds and multiplied by `time_scale`.

    `rpm` counts API calls only (submit, status, result, sync runs); file downloads come from a
    CDN at the real providers and are never limited. A request refused with 429 does not use budget.
    `credits=None` means an unlimited balance; otherwise each job's price is deducted and a job the
    balance cannot cover is refused with 406.
    """

    api_keys: frozenset[str] | None = None
    latency_median: float = 7.6
    latency_sigma: float = 0.25
    queue_seconds: float = 0.3
    time_scale: float = 1.0
    failure_rate: float = 0.0
    safety_drop_rate: float = 0.0
    rpm: int | None = None
    ttl_seconds: float = 3600.0
    credits: float | None = None
    v1_mode: str = "image"
    rng_seed: int = 0

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the emulator answered it; `at` is `time.monotonic()` on arrival."""

    method: str
    path: str
    route: str
    status: int
    at: float


@dataclass(slots=True)
class Fault:
    """A canned answer given instead of the real one."""

    status: int
    remaining: int
    route: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    #: a verbatim body (e.g. malformed JSON), sent instead of `body`
    raw: str | None = None
    #: drop the connection without answering (the client sees a reset): "before" handling the request, or
    #: "after" it (the job exists, its id never reaches the client)
    reset: str | None = None

    def echoing(self, key: str) -> Fault:
        """This fault with every `{api_key}` in its body replaced by the key the request carried."""

        def fill(value: Any) -> Any:
            if isinstance(value, str):
                return value.replace(API_KEY_PLACEHOLDER, key)
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            if isinstance(value, list):
                return [fill(v) for v in value]
            return value

        return Fault(self.status, self.remaining, self.route, fill(self.body), self.headers, fill(self.raw), self.reset)


@dataclass(slots=True)
class Delay:
    """A pause before answering, in real seconds (never scaled: it exists to trip client timeouts)."""

    seconds: float
    remaining: int
    route: str


@dataclass
class FaultQueue:
    """Faults and delays waiting for the next matching requests, oldest first."""

    faults: list[Fault] = field(default_factory=list)
    delays: list[Delay] = field(default_factory=list)

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        route: str = ANY_ROUTE,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        raw: str | None = None,
        reset: str | None = None,
    ) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        self.faults.append(Fault(status, times, route, body, headers, raw, reset))

    def delay_next(self, seconds: float, *, times: int = 1, route: str = ANY_ROUTE) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        self.delays.append(Delay(seconds, times, route))

    def take_fault(self, route: str) -> Fault | None:
        for fault in self.faults:
            if fault.route in (ANY_ROUTE, route):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def take_delay(self, route: str) -> float:
        for delay in self.delays:
            if delay.route in (ANY_ROUTE, route):
                delay.remaining -= 1
                if delay.remaining == 0:
                    self.delays.remove(delay)
                return delay.seconds
        return 0.0

    def clear(self) -> None:
        self.faults.clear()
        self.delays.clear()


@dataclass
class RequestLog:
    """Every answered request, with per-route counters."""

    requests: list[RecordedRequest] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def record(self, entry: RecordedRequest) -> None:
        self.requests.append(entry)
        self.counts[entry.route] += 1

    @property
    def count_429(self) -> int:
        return sum(1 for entry in self.requests if entry.status == 429)


class SlidingWindowLimiter:
    """At most `limit` admissions in any `window` seconds; `limit=None` admits everything."""

    def __init__(self, limit: int | None, window: float) -> None:
        self.limit = limit
        self.window = window
        self._admitted: deque[float] = deque()

    def acquire(self, now: float) -> float | None:
        """Admit and return None, or refuse and return the seconds until the oldest admission expires."""
        if self.limit is None:
            return None
        while self._admitted and self._admitted[0] <= now - self.window:
            self._admitted.popleft()
        if len(self._admitted) >= self.limit:
            return max(0.0, self._admitted[0] + self.window - now)
        self._admitted.append(now)
        return None


def lognormal_latency(rng: random.Random, median: float, sigma: float) -> float:
    """A latency whose median is `median`; sigma is the spread of its logarithm."""
    if median <= 0:
        return 0.0
    return median * math.exp(sigma * rng.gauss(0.0, 1.0))


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"


_METHOD_NOT_ALLOWED_PAGE = (
    "<!DOCTYPE html><html><head><title>405 Method Not Allowed</title></head>"
    "<body><h1>405 Method Not Allowed</h1></body></html>"
)


class EmulatorServer:
    """An aiohttp server on loopback with the shared test-facing controls; subclasses add routes."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.rng = random.Random(self.config.rng_seed)
        self.faults = FaultQueue()
        self.log = RequestLog()
        self.limiter = SlidingWindowLimiter(self.config.rpm, self.config.scaled(60.0))
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def build_routes(self, app: web.Application) -> None:
        """Add the provider's routes; use `self.handler(...)` to wrap each one."""
        raise NotImplementedError

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen and return the root base URL, e.g. `http://127.0.0.1:PORT`."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        app = web.Application(middlewares=[self._middleware])
        self.build_routes(app)
        # A short shutdown timeout: handlers parked in delay_next must not hold up stop().
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        self._runner = runner
        self._base_url = f"http://{host}:{bound_port}"
        return self._base_url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("emulator not started")
        return self._base_url

    # -- test-facing controls --------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        route: str = ANY_ROUTE,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        raw: str | None = None,
    ) -> None:
        """Answer the next `times` matching requests with `status` (body defaults to `{"error": phrase}`).

        `{api_key}` anywhere in `body` or `raw` is replaced by the key the request carried.
        """
        self.faults.fail_next(status, times=times, route=route, body=body, headers=headers, raw=raw)

    def reset_next(self, *, times: int = 1, route: str = ANY_ROUTE, after: bool = False) -> None:
        """Drop the connection of the next `times` matching requests without an answer: before handling them,
        or (`after`) once handled, so a submit is accepted but its answer never arrives."""
        self.faults.fail_next(0, times=times, route=route, reset="after" if after else "before")

    def delay_next(self, seconds: float, *, times: int = 1, route: str = ANY_ROUTE) -> None:
        """Sleep `seconds` (real time) before answering the next `times` matching requests."""
        self.faults.delay_next(seconds, times=times, route=route)

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.log.requests

    @property
    def counts(self) -> Counter[str]:
        return self.log.counts

    @property
    def count_429(self) -> int:
        return self.log.count_429

    # -- hooks for subclasses --------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic()

    def authenticate(self, request: web.Request) -> web.Response | None:
        """Return a refusal, or None when the caller may proceed."""
        return None

    def presented_key(self, request: web.Request) -> str:
        """The API key a request carried, as the provider reads it ("" when none)."""
        return ""

    def rate_limit_response(self, retry_in: float) -> web.Response:
        return json_error(429, "Rate limit exceeded")

    def fault_response(self, fault: Fault) -> web.Response:
        if fault.raw is not None:
            return web.Response(
                text=fault.raw, status=fault.status, headers=fault.headers, content_type="application/json"
            )
        body = fault.body if fault.body is not None else {"error": _phrase(fault.status)}
        return web.json_response(body, status=fault.status, headers=fault.headers)

    def handler(self, route: str, inner: Handler, *, api: bool = True, limited: bool | None = None) -> Handler:
        """Wrap a route: label it, then apply delays, faults and, for API routes, auth and the RPM limit.

        `limited=False` authenticates an API route without counting it against `rpm` (another service).
        """
        limited = api if limited is None else limited

        async def wrapped(request: web.Request) -> web.StreamResponse:
            request[ROUTE_KEY] = route
            delay = self.faults.take_delay(route)
            if delay > 0:
                # The request arrived whole; the answer is what is late (the job is created even if the
                # client stops waiting).
                await request.read()
                await asyncio.sleep(delay)
            fault = self.faults.take_fault(route)
            if fault is not None and fault.reset is not None:
                await request.read()
                if fault.reset == "after":
                    await inner(request)
                if request.transport is not None:
                    request.transport.abort()
                raise web.HTTPServiceUnavailable()
            if fault is not None:
                return self.fault_response(fault.echoing(self.presented_key(request)))
            if api:
                refusal = self.authenticate(request)
                if refusal is not None:
                    return refusal
            if limited:
                retry_in = self.limiter.acquire(self.now())
                if retry_in is not None:
                    return self.rate_limit_response(retry_in)
            return await inner(request)

        return wrapped

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        arrived = self.now()
        status = 500
        try:
            response: web.StreamResponse
            try:
                response = await handler(request)
            except web.HTTPMethodNotAllowed as exc:
                response = web.Response(
                    status=405,
                    text=_METHOD_NOT_ALLOWED_PAGE,
                    content_type="text/html",
                    headers={"Allow": ", ".join(sorted(exc.allowed_methods))},
                )
            except web.HTTPNotFound:
                response = json_error(404, "Not Found")
            except web.HTTPException as exc:
                status = exc.status
                raise
            status = response.status
            return response
        finally:
            route = request.get(ROUTE_KEY, OTHER_ROUTE)
            self.log.record(RecordedRequest(request.method, request.path, route, status, arrived))


#: the cog's message when the safety checker dropped every output
NSFW_ERROR = "All generated images contained NSFW content. Try running it again with a different prompt."


def safety_dropped(seed: int, index: int, rate: float) -> bool:
    """Whether the emulated safety checker drops output `index` of a job with `seed` (deterministic)."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"safety:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


#: the failure a job gets from `failure_rate` or a bare `next_outcome()`, unless the emulator words it otherwise
DEFAULT_FAILURE: Final = "Prediction failed: the worker crashed while generating. Please try again."
# Rendered files kept in memory; older ones are rendered again on demand, to the same bytes.
FILE_CACHE_SIZE: Final = 64
_FILE_NAME = re.compile(r"out-(\d+)\.(webp|jpg|png)")


@dataclass(frozen=True, slots=True)
class Outcome:
    """A forced result for the next job created: failure, a fixed latency, or chosen safety drops."""

    failed: bool = True
    error: str = DEFAULT_FAILURE
    latency: float | None = None
    dropped: frozenset[int] | None = None


class Decision(NamedTuple):
    """What a new job does: its error (None on success), the outputs it keeps, its latency and its seed."""

    error: str | None
    kept: tuple[int, ...]
    latency: float
    seed: int


def decide(
    rng: random.Random,
    config: EmulatorConfig,
    outcome: Outcome | None,
    *,
    count: int,
    safety: bool,
    seed: int | None,
    default_error: str,
    error: str | None = None,
    latency: float | None = None,
) -> Decision:
    """Decide a new job: `error`/`latency` given here win over the forced `outcome`, which wins over chance.

    The rng is drawn in a fixed order (failure roll, seed, latency) so seeded runs stay reproducible.
    """
    if error is None:
        if outcome is not None and outcome.failed:
            error = outcome.error
        elif outcome is None and config.failure_rate > 0 and rng.random() < config.failure_rate:
            error = default_error
    if seed is None:
        # Like the cog: a random 16-bit seed, recorded so the outputs stay reproducible.
        seed = rng.randrange(65536)
    kept: tuple[int, ...] = ()
    if error is None:
        if outcome is not None and outcome.dropped is not None:
            dropped = outcome.dropped
        elif safety:
            rate = config.safety_drop_rate
            dropped = frozenset(i for i in range(count) if safety_dropped(seed, i, rate))
        else:
            dropped = frozenset()
        kept = tuple(i for i in range(count) if i not in dropped)
        if not kept:
            error = NSFW_ERROR
    if latency is None:
        if outcome is not None and outcome.latency is not None:
            latency = outcome.latency
        else:
            latency = lognormal_latency(rng, config.latency_median, config.latency_sigma)
    return Decision(error, kept, latency, seed)


def random_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from `rng`, so seeded runs give the same ids."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# -- input readers -------------------------------------------------------------------------------


class InvalidInput(Exception):
    """A request input the model refuses; `message` is what the provider says about it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Plan:
    """What a validated request renders."""

    width: int
    height: int
    count: int
    output_format: str
    quality: int
    seed: int | None
    safety: bool
    source: bytes | None = None
    prompt: str | None = None


def read_int(values: dict[str, Any], name: str, default: int, low: int, high: int, *, kind: str = "an integer") -> int:
    value = values.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be {kind}")
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}")
    return value


def read_number(values: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = values.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{name} must be a number")
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low:g} and {high:g}")
    return float(value)


def read_choice(values: dict[str, Any], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = values.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInput(f"{name} must be one of: {', '.join(allowed)}")
    return value


def read_bool(values: dict[str, Any], name: str, default: bool = False) -> bool:
    value = values.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be a boolean")
    return value


def read_megapixels(value: object) -> Megapixels:
    # The pages type it as a number while their examples send a string; both reach the model.
    if value is None or value in ("1", 1):
        return "1"
    if value in ("0.25", 0.25) and not isinstance(value, bool):
        return "0.25"
    raise InvalidInput("megapixels must be one of: 1, 0.25")


# -- rendered outputs ----------------------------------------------------------------------------


class Renderable(Protocol):
    """What a job must tell `render_output` about its images."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def output_format(self) -> str: ...
    @property
    def quality(self) -> int: ...
    @property
    def source(self) -> bytes | None: ...
    @property
    def prompt(self) -> str | None: ...


def render_output(job: Renderable, seed: int, index: int) -> Coroutine[Any, Any, bytes]:
    """Render output `index` of `job` in a worker thread."""
    return asyncio.to_thread(
        render_image,
        width=job.width,
        height=job.height,
        seed=seed,
        index=index,
        output_format=job.output_format,
        quality=job.quality,
        source=job.source,
        prompt=job.prompt,
    )


def output_index(name: str, kept: tuple[int, ...], output_format: str) -> int | None:
    """The index a file name `out-N.ext` asks for, or None unless it is a kept output in the job's format."""
    match = _FILE_NAME.fullmatch(name)
    if match is None:
        return None
    index = int(match.group(1))
    return index if index in kept and match.group(2) == output_format else None


K = TypeVar("K", bound=Hashable)


class RenderedFiles(Generic[K]):
    """Rendered outputs, each rendered once and shared by every request that wants it; the oldest finished
    renders are evicted past `size` and rendered again on demand, to the same bytes."""

    def __init__(self, size: int = FILE_CACHE_SIZE) -> None:
        self.size = size
        self._futures: OrderedDict[K, asyncio.Future[bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._futures)

    def clear(self) -> None:
        self._futures.clear()

    async def get(self, key: K, render: Callable[[], Awaitable[bytes]]) -> bytes:
        future = self._futures.get(key)
        if future is None:
            future = asyncio.ensure_future(render())
            self._futures[key] = future
            while len(self._futures) > self.size:
                oldest = next(iter(self._futures))
                if not self._futures[oldest].done():
                    break
                del self._futures[oldest]
        else:
            self._futures.move_to_end(key)
        # Shielded so one client hanging up mid-render does not cancel it for the others.
        return await asyncio.shield(future)

    async def drain(self) -> None:
        """Wait for the renders still running."""
        if self._futures:
            await asyncio.gather(*self._futures.values(), return_exceptions=True)


class ProviderEmulator(EmulatorServer):
    """An image provider's emulator: forced outcomes for the next jobs and a cache of rendered outputs."""

    #: the error of a job failed by `failure_rate` or by `next_outcome()` without an `error`
    default_failure: ClassVar[str] = DEFAULT_FAILURE

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        super().__init__(config)
        self._outcomes: deque[Outcome] = deque()
        self._files: RenderedFiles[Any] = RenderedFiles()

    def next_outcome(
        self,
        failed: bool = True,
        error: str | None = None,
        *,
        latency: float | None = None,
        dropped: set[int] | frozenset[int] | None = None,
    ) -> None:
        """Force the next created job: failed with `error` (default `default_failure`), or (failed=False) a
        latency and safety drops.

        `latency` is in full-scale seconds; `dropped` lists output indices the safety checker removes.
        """
        message = self.default_failure if error is None else error
        self._outcomes.append(Outcome(failed, message, latency, None if dropped is None else frozenset(dropped)))

    def take_outcome(self) -> Outcome | None:
        return self._outcomes.popleft() if self._outcomes else None

    def decide(
        self,
        outcome: Outcome | None,
        plan: Plan,
        *,
        error: str | None = None,
        latency: float | None = None,
    ) -> Decision:
        """`decide` with this emulator's rng, config and default failure."""
        return decide(
            self.rng,
            self.config,
            outcome,
            count=plan.count,
            safety=plan.safety,
            seed=plan.seed,
            default_error=self.default_failure,
            error=error,
            latency=latency,
        )

    async def serve_file(self, key: Hashable, job: Renderable, seed: int, index: int) -> web.Response:
        """One output's bytes from the cache, rendering them first when needed."""
        data = await self._files.get(key, lambda: render_output(job, seed, index))
        return web.Response(body=data, content_type=CONTENT_TYPES[job.output_format])

    async def stop(self) -> None:
        await super().stop()
        await self._files.drain()
