"""The fake Discord's HTTP side: lifecycle, routing, the request log, injected faults, the CDN and /gateway."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import BodyPartReader, hdrs, web

from emulators.discord.messages import UNKNOWN_ROUTE, RecordedRequest
from emulators.discord.models import Json, error_body, form_error
from emulators.discord.ratelimits import RateLimiter, RateLimits
from emulators.discord.state import ApiError, DiscordState, Upload

log = logging.getLogger(__name__)

API_PREFIX: Final = "/api/v10"
MAX_BODY: Final = 64 * 1024 * 1024
_FILE_FIELD = re.compile(r"files\[(\d+)\]")


def json_reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer whose Content-Type is exactly `application/json`, as discord.py compares it with `==`."""
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": "application/json", **(headers or {})}
    )


def no_content() -> web.Response:
    return web.Response(status=204)


@dataclass(frozen=True, slots=True)
class Call:
    """One matched API request, its body already parsed."""

    request: web.Request
    params: dict[str, str]
    body: Any
    uploads: list[Upload]

    def flag(self, name: str) -> bool:
        return self.request.query.get(name, "").lower() in ("1", "true")

    def snowflake(self, name: str) -> int:
        value = self.params[name]
        if not value.isdigit():
            raise ApiError(400, form_error(name, "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.'))
        return int(value)


Handler = Callable[[Call], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class ApiRoute:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    auth: bool

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"


@dataclass(slots=True)
class InjectedFault:
    """A canned error answer for the next `remaining` requests matching `method` and `pattern`."""

    method: str
    pattern: re.Pattern[str]
    remaining: int
    status: int
    body: Json
    headers: dict[str, str] = field(default_factory=dict)
    #: carry the request out first, then answer with the error (the answer of a request that did land is lost)
    after_applying: bool = False

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and bool(
            self.pattern.search(path) or self.pattern.search(API_PREFIX + path)
        )


class DiscordServer(DiscordState):
    """The aiohttp server in front of `DiscordState`: REST under /api/v10, /gateway and /attachments."""

    def __init__(
        self,
        *,
        bot_name: str = "Fluxcord",
        upload_limit: int = 10 * 1024 * 1024,
        rate_limits: RateLimits | None = None,
    ) -> None:
        super().__init__(bot_name=bot_name, upload_limit=upload_limit)
        #: Discord's REST rate limits; `rate_limiter.config.enabled = False` turns them off
        self.rate_limiter = RateLimiter(rate_limits)
        self.routes: list[ApiRoute] = []
        #: tracebacks of emulator bugs (answered 500); a healthy run leaves this empty
        self.errors: list[str] = []
        self._faults: list[InjectedFault] = []
        #: attachments the CDN serves with endless bytes after their own and no Content-Length
        self.endless_attachments: set[int] = set()
        #: bytes the CDN wrote for each endless attachment, and those whose reader hung up
        self.endless_bytes_sent: dict[int, int] = {}
        self.endless_abandoned: set[int] = set()
        self._runner: web.AppRunner | None = None
        self._add_routes()

    def route(self, method: str, template: str, handler: Handler, *, auth: bool = True) -> None:
        parts = re.split(r"\{(\w+)\}", template)
        # Even parts are literal text, odd parts parameter names.
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
        self.routes.append(ApiRoute(method, template, re.compile(regex), handler, auth))

    def _add_routes(self) -> None:
        """Register the API routes with `route`; subclasses extend it."""

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen and return the root URL, e.g. `http://127.0.0.1:PORT`."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._api)
        app.router.add_get("/attachments/{channel}/{attachment}/{filename}", self._cdn)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        self._runner = runner
        self._root = f"http://{host}:{runner.addresses[0][1]}"
        return self._root

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await self.gateway.close_all()
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- faults ----------------------------------------------------------------------------------

    def inject_429(
        self, method: str, path_regex: str, *, times: int = 1, retry_after: float = 0.3, global_: bool = False
    ) -> None:
        """Answer the next `times` matching calls with a 429 discord.py honours (Via header, JSON retry_after).

        `path_regex` is searched in the path below /api/v10 (e.g. r"/channels/\\d+/messages/\\d+$"); `method`
        may be "*".
        """
        bucket = hashlib.sha1(f"{method} {path_regex}".encode()).hexdigest()[:32]
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Scope": "global" if global_ else "user",
        }
        if global_:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers |= {
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                "X-RateLimit-Bucket": bucket,
            }
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": global_, "code": 0}
        self._add_fault(InjectedFault(method.upper(), re.compile(path_regex), times, 429, body, headers))

    def inject_error(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        code: int = 0,
        message: str = "",
        times: int = 1,
        after_applying: bool = False,
    ) -> None:
        """Answer the next `times` matching calls with `status` and Discord's `{"message", "code"}` body.

        With `after_applying` the request takes effect first (a message is posted, say) and only its answer is
        the error: what a client sees when Discord did the work but the answer was lost (a 502 from the edge).
        """
        body = error_body(message or f"{status}: injected error", code)
        pattern = re.compile(path_regex)
        self._add_fault(InjectedFault(method.upper(), pattern, times, status, body, after_applying=after_applying))

    def _add_fault(self, fault: InjectedFault) -> None:
        if fault.remaining < 1:
            raise ValueError("times must be at least 1")
        self._faults.append(fault)

    def _take_fault(self, method: str, path: str) -> InjectedFault | None:
        for fault in self._faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    # -- observing -------------------------------------------------------------------------------

    @property
    def unknown_requests(self) -> list[RecordedRequest]:
        """Requests to routes the emulator does not implement."""
        return [request for request in self.requests if request.unknown]

    def calls(self, route: str) -> list[RecordedRequest]:
        """Requests answered by one route, named like "PATCH /channels/{channel}/messages/{message}"."""
        return [request for request in self.requests if request.route == route]

    def _record(
        self,
        request: web.Request,
        route: str,
        status: int,
        arrived: float,
        body: Any = None,
        uploads: list[Upload] | None = None,
    ) -> None:
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                route=route,
                status=status,
                json=body,
                files=tuple(upload.filename for upload in uploads or []),
                query=dict(request.query),
                at=arrived,
            )
        )
        self.signal.bump()

    # -- dispatch --------------------------------------------------------------------------------

    def _match(self, method: str, path: str) -> tuple[ApiRoute, dict[str, str]]:
        allowed = False
        for route in self.routes:
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict()
            allowed = True
        if allowed:
            raise ApiError(405, error_body("405: Method Not Allowed", 0))
        raise ApiError(404, error_body("404: Not Found", 0))

    async def _api(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        path = request.path[len(API_PREFIX) :]
        label, body = UNKNOWN_ROUTE, None
        uploads: list[Upload] = []
        try:
            body, uploads = await self._read_body(request)
            route, params = self._match(request.method, path)
            label = route.label
            if route.auth and request.headers.get(hdrs.AUTHORIZATION) != f"Bot {self.token}":
                raise ApiError(401, error_body("401: Unauthorized", 0))
            fault = self._take_fault(request.method, path)
            if fault is not None:
                if fault.after_applying:
                    await route.handler(Call(request, params, body, uploads))
                response = json_reply(fault.body, fault.status, fault.headers)
            else:
                verdict = self.rate_limiter.check(route.label, params, token_route=not route.auth)
                limits = verdict.headers if verdict is not None else {}
                if verdict is not None and verdict.refusal is not None:
                    response = json_reply(verdict.refusal, 429, limits)
                else:
                    try:
                        response = await route.handler(Call(request, params, body, uploads))
                    except ApiError as error:
                        response = json_reply(error.body, error.status)
                    response.headers.update(limits)
        except ApiError as error:
            response = json_reply(error.body, error.status)
        except Exception:
            self.errors.append(traceback.format_exc())
            log.exception("Discord emulator failed on %s %s", request.method, request.path)
            response = json_reply(error_body("500: Internal Server Error", 0), 500)
        self._record(request, label, response.status, arrived, body, uploads)
        return response

    async def _read_body(self, request: web.Request) -> tuple[Any, list[Upload]]:
        if not request.body_exists:
            return None, []
        if request.content_type.startswith("multipart/"):
            payload: Any = None
            uploads: list[Upload] = []
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name == "payload_json":
                    payload = self._parse_json(await part.read(decode=True))
                elif part.name and (found := _FILE_FIELD.fullmatch(part.name)):
                    data = bytes(await part.read(decode=False))
                    if len(data) > self.upload_limit:
                        raise ApiError(413, error_body("Request entity too large", 40005))
                    filename = part.filename or f"file{found[1]}"
                    uploads.append(Upload(int(found[1]), filename, part.headers.get(hdrs.CONTENT_TYPE, ""), data))
            return payload, uploads
        raw = await request.read()
        return (self._parse_json(raw) if raw else None), []

    @staticmethod
    def _parse_json(raw: bytes | bytearray) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, error_body("The request body contains invalid JSON.", 50109)) from None

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        try:
            attachment = self.attachments.get(int(request.match_info["attachment"]))
        except ValueError:
            attachment = None
        route = "GET /attachments/{channel}/{attachment}/{filename}"
        if attachment is not None and attachment.id in self.endless_attachments:
            self._record(request, route, 200, arrived)
            return await self._endless(request, attachment.id, attachment.data, attachment.content_type)
        if attachment is None or str(attachment.id) != request.match_info["attachment"]:
            response = web.Response(status=404, text="This content is no longer available.")
        else:
            response = web.Response(body=attachment.data, headers={"Content-Type": attachment.content_type})
        self._record(request, route, response.status, arrived)
        return response

    async def _endless(self, request: web.Request, attachment_id: int, data: bytes, kind: str) -> web.StreamResponse:
        """The attachment's bytes, then zeros until the reader hangs up: a body far larger than declared."""
        response = web.StreamResponse(headers={"Content-Type": kind})
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent, chunk = 0, bytes(64 * 1024)
        try:
            await response.write(data)
            sent += len(data)
            while True:
                await response.write(chunk)
                sent += len(chunk)
                self.endless_bytes_sent[attachment_id] = sent
        except (ConnectionError, RuntimeError):
            # The reader went away, which is what a capped reader does.
            self.endless_abandoned.add(attachment_id)
            self.signal.bump()
            return response

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        self._record(request, "GET /gateway", 101, time.monotonic())
        return await self.gateway.handle(request)

    async def _unknown(self, request: web.Request) -> web.Response:
        self._record(request, UNKNOWN_ROUTE, 404, time.monotonic())
        return json_reply(error_body("404: Not Found", 0), 404)
