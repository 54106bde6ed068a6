"""The fake Discord gateway: HELLO, heartbeats, IDENTIFY → READY + GUILD_CREATE, RESUME, dispatches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import WSMsgType, web

from emulators.discord.messages import ChangeSignal
from emulators.discord.models import Json

HEARTBEAT_INTERVAL_MS: Final = 41_250
# Dispatches kept per session so a RESUME can replay what the client missed.
REPLAY_BUFFER: Final = 1000

DISPATCH: Final = 0
HEARTBEAT: Final = 1
IDENTIFY: Final = 2
RESUME: Final = 6
RECONNECT: Final = 7
REQUEST_MEMBERS: Final = 8
INVALID_SESSION: Final = 9
HELLO: Final = 10
HEARTBEAT_ACK: Final = 11
CLIENT_OPS: Final = frozenset({HEARTBEAT, IDENTIFY, 3, 4, RESUME, REQUEST_MEMBERS})


@dataclass(eq=False)
class GatewaySession:
    """One IDENTIFYed session; it outlives its connection so the client can RESUME it."""

    id: str
    intents: int
    seq: int = 0
    sent: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=REPLAY_BUFFER))
    connection: GatewayConnection | None = None


class GatewayConnection:
    """One WebSocket; frames go out through a queue so synchronous code can dispatch."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.session: GatewaySession | None = None
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.received: list[Json] = []

    def send(self, frame: Json) -> None:
        self.queue.put_nowait(json.dumps(frame))

    async def write_loop(self) -> None:
        while (text := await self.queue.get()) is not None:
            if self.ws.closed:
                continue
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(text)


ReadyBuilder = Callable[[GatewaySession], list[tuple[str, Json]]]
MembersChunk = Callable[[Json], Json | None]


class Gateway:
    """Sessions and connections; dispatches go to the most recent live connection."""

    def __init__(
        self, *, token: str, signal: ChangeSignal, on_identify: ReadyBuilder, on_request_members: MembersChunk
    ) -> None:
        self.token = token
        self._signal = signal
        self._on_identify = on_identify
        self._on_request_members = on_request_members
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: set[GatewayConnection] = set()
        self.live: GatewayConnection | None = None
        self.ready = asyncio.Event()
        self.identify_count = 0
        self.resume_count = 0

    @property
    def intents(self) -> int:
        session = self.live.session if self.live is not None else None
        return session.intents if session is not None else 0

    def dispatch(self, event: str, data: Json) -> bool:
        """Send a dispatch to the live session; False when no client is connected."""
        connection = self.live
        if connection is None or connection.session is None:
            return False
        self._dispatch_on(connection, event, data)
        return True

    def _dispatch_on(self, connection: GatewayConnection, event: str, data: Json) -> None:
        session = connection.session
        assert session is not None
        session.seq += 1
        text = json.dumps({"op": DISPATCH, "t": event, "s": session.seq, "d": data})
        session.sent.append((session.seq, text))
        connection.queue.put_nowait(text)

    def request_reconnect(self) -> None:
        """Ask the live client to reconnect and RESUME (op 7), as Discord does before a restart."""
        if self.live is None:
            raise RuntimeError("no bot is connected to the gateway")
        self.live.send({"op": RECONNECT, "d": None})

    async def close_all(self) -> None:
        for connection in list(self.connections):
            await connection.ws.close(code=1001, message=b"emulator stopping")

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = GatewayConnection(ws)
        self.connections.add(connection)
        writer = asyncio.create_task(connection.write_loop())
        connection.send({"op": HELLO, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                if not await self._on_frame(connection, message.data):
                    break
        finally:
            self._drop(connection)
            connection.queue.put_nowait(None)
            await writer
        return ws

    def _drop(self, connection: GatewayConnection) -> None:
        self.connections.discard(connection)
        session = connection.session
        if session is not None:
            session.connection = None
            # A client that closes normally ends its session; any other close leaves it resumable.
            if connection.ws.close_code in (1000, 1001):
                self.sessions.pop(session.id, None)
        if self.live is connection:
            self.live = None
            self.ready.clear()
        self._signal.bump()

    async def _on_frame(self, connection: GatewayConnection, text: str) -> bool:
        """Handle one client frame; False once the connection was closed."""
        try:
            frame = json.loads(text)
            op = frame["op"]
        except (ValueError, KeyError, TypeError):
            await connection.ws.close(code=4002, message=b"Error while decoding payload.")
            return False
        connection.received.append(frame)
        data = frame.get("d")
        if op == HEARTBEAT:
            connection.send({"op": HEARTBEAT_ACK})
            return True
        if op not in CLIENT_OPS:
            await connection.ws.close(code=4001, message=b"Unknown opcode.")
            return False
        if op == IDENTIFY:
            return await self._identify(connection, data)
        if op == RESUME:
            return await self._resume(connection, data)
        if connection.session is None:
            await connection.ws.close(code=4003, message=b"Not authenticated.")
            return False
        if op == REQUEST_MEMBERS and isinstance(data, dict):
            chunk = self._on_request_members(data)
            if chunk is not None:
                self._dispatch_on(connection, "GUILD_MEMBERS_CHUNK", chunk)
        return True

    async def _identify(self, connection: GatewayConnection, data: Json) -> bool:
        if connection.session is not None:
            await connection.ws.close(code=4005, message=b"Already authenticated.")
            return False
        if not isinstance(data, dict) or data.get("token") != self.token:
            await connection.ws.close(code=4004, message=b"Authentication failed.")
            return False
        session = GatewaySession(id=secrets.token_hex(16), intents=int(data.get("intents") or 0))
        self._attach(connection, session)
        self.identify_count += 1
        for event, payload in self._on_identify(session):
            self._dispatch_on(connection, event, payload)
        self.ready.set()
        self._signal.bump()
        return True

    async def _resume(self, connection: GatewayConnection, data: Json) -> bool:
        session = self.sessions.get(str(data.get("session_id"))) if isinstance(data, dict) else None
        if session is None or data.get("token") != self.token:
            # Not resumable: the client starts over with a fresh IDENTIFY.
            connection.send({"op": INVALID_SESSION, "d": False})
            return True
        previous = session.connection
        if previous is not None and previous is not connection:
            # The old socket may not have closed yet; the resuming one takes the session over.
            previous.session = None
            await previous.ws.close(code=4000, message=b"Session resumed elsewhere.")
        self._attach(connection, session)
        last_seen = int(data.get("seq") or 0)
        for seq, text in list(session.sent):
            if seq > last_seen:
                connection.queue.put_nowait(text)
        self._dispatch_on(connection, "RESUMED", {})
        self.resume_count += 1
        self.ready.set()
        self._signal.bump()
        return True

    def _attach(self, connection: GatewayConnection, session: GatewaySession) -> None:
        self.sessions[session.id] = session
        session.connection = connection
        connection.session = session
        self.live = connection
