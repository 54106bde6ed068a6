"""Stored messages, test-side interaction handles and the request log of the fake Discord."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from emulators.discord.models import EPHEMERAL, LOADING, Json, Member, StoredAttachment

UNKNOWN_ROUTE: Final = "unknown"

# Message types: a reply to a slash command, to a context-menu command, anything else.
CHAT_INPUT_COMMAND: Final = 20
CONTEXT_MENU_COMMAND: Final = 23
DEFAULT: Final = 0


class ChangeSignal:
    """Wakes waiters whenever the emulator's state changed; waiters also re-check on a short poll."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def bump(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], seconds: float, describe: Callable[[], str]) -> None:
        """Return once `predicate()` holds; after `seconds`, raise TimeoutError(describe())."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(describe())
            # The short poll catches predicates over state the emulator does not own (the bot's, say).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), min(remaining, 0.05))


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One HTTP request as the emulator answered it; `json` is `payload_json` for multipart bodies."""

    method: str
    path: str
    route: str
    status: int
    json: Any = None
    files: tuple[str, ...] = ()
    query: dict[str, str] = field(default_factory=dict)
    at: float = 0.0

    @property
    def unknown(self) -> bool:
        """A route the emulator does not implement (answered 404 or 405)."""
        return self.route == UNKNOWN_ROUTE

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


@dataclass(frozen=True, slots=True)
class MessageState:
    """What a message looked like after one create or edit."""

    content: str
    embeds: list[Json]
    attachments: list[str]
    components: list[Json]
    flags: int


@dataclass(eq=False)
class StoredMessage:
    """A message as the emulator keeps it; `edits[0]` is the state it was created in."""

    id: int
    channel_id: int
    guild_id: int
    author: Member
    timestamp: str
    content: str = ""
    embeds: list[Json] = field(default_factory=list)
    components: list[Json] = field(default_factory=list)
    attachments: list[StoredAttachment] = field(default_factory=list)
    flags: int = 0
    type: int = DEFAULT
    tts: bool = False
    nonce: str | int | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: Json | None = None
    message_reference: Json | None = None
    edited_timestamp: str | None = None
    deleted: bool = False
    edits: list[MessageState] = field(default_factory=list)

    @property
    def author_id(self) -> int:
        return self.author.id

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """Still the "is thinking…" placeholder of a deferred interaction."""
        return bool(self.flags & LOADING)

    @property
    def contents(self) -> list[str]:
        """The content of every state, oldest first."""
        return [state.content for state in self.edits]

    def snapshot(self) -> None:
        self.edits.append(
            MessageState(
                content=self.content,
                embeds=[dict(embed) for embed in self.embeds],
                attachments=[attachment.filename for attachment in self.attachments],
                components=list(self.components),
                flags=self.flags,
            )
        )

    def to_payload(self) -> Json:
        payload: Json = {
            "id": str(self.id),
            "type": self.type,
            "channel_id": str(self.channel_id),
            "content": self.content,
            "author": self.author.user_payload(),
            "attachments": [attachment.to_payload() for attachment in self.attachments],
            "embeds": self.embeds,
            "components": self.components,
            "mentions": [],
            "mention_roles": [],
            "mention_channels": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": self.tts,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "flags": self.flags,
        }
        if self.nonce is not None:
            payload["nonce"] = self.nonce
        if self.webhook_id is not None:
            payload["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            payload["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            payload["interaction_metadata"] = self.interaction_metadata
        if self.message_reference is not None:
            payload["message_reference"] = self.message_reference
        return payload

    def __repr__(self) -> str:
        state = " deleted" if self.deleted else ""
        return (
            f"<StoredMessage id={self.id} channel={self.channel_id} flags={self.flags}{state} content={self.content!r}>"
        )


def iter_components(components: list[Json]) -> Iterator[Json]:
    """Every component, depth first, through action rows, containers, sections and labels."""
    for component in components:
        yield component
        yield from iter_components(component.get("components") or [])
        for key in ("accessory", "component"):
            child = component.get(key)
            if isinstance(child, dict):
                yield from iter_components([child])


def custom_ids(message: StoredMessage) -> list[str]:
    """The custom ids of every interactive component on the message, in display order."""
    return [c["custom_id"] for c in iter_components(message.components) if "custom_id" in c]


def find_button(message: StoredMessage, label_or_emoji: str) -> Json:
    """The button whose label, emoji (unicode or custom name) or custom id equals `label_or_emoji`."""
    buttons = [c for c in iter_components(message.components) if c.get("type") == 2]
    for button in buttons:
        emoji = button.get("emoji") or {}
        if label_or_emoji in (button.get("label"), emoji.get("name"), button.get("custom_id")):
            return button
    seen = [(b.get("label"), (b.get("emoji") or {}).get("name"), b.get("custom_id")) for b in buttons]
    raise LookupError(f"no button {label_or_emoji!r} on message {message.id}; buttons (label, emoji, id): {seen}")


class Interaction:
    """The test-side handle of one interaction the emulator dispatched to the bot."""

    def __init__(
        self,
        *,
        interaction_id: int,
        token: str,
        kind: int,
        user: Member,
        channel_id: int,
        payload: Json,
        created_at: float,
        signal: ChangeSignal,
        message: StoredMessage | None = None,
    ) -> None:
        self.id = interaction_id
        self.token = token
        self.type = kind
        self.user = user
        self.channel_id = channel_id
        self.payload = payload
        self.created_at = created_at
        #: the message a component or modal interaction came from
        self.message = message
        self.callbacks: list[Json] = []
        self.original: StoredMessage | None = None
        self.followups: list[StoredMessage] = []
        #: the choices of an autocomplete answer (callback type 8)
        self.choices: list[Json] | None = None
        #: the modal the bot opened (callback type 9)
        self.modal: Json | None = None
        self._signal = signal

    @property
    def acknowledged(self) -> bool:
        return bool(self.callbacks)

    @property
    def deferred(self) -> bool:
        return any(callback.get("type") in (5, 6) for callback in self.callbacks)

    @property
    def ephemeral(self) -> bool:
        """Deferred or answered with the ephemeral flag."""
        for callback in self.callbacks:
            if callback.get("type") in (4, 5):
                return bool(int((callback.get("data") or {}).get("flags") or 0) & EPHEMERAL)
        return False

    @property
    def replies(self) -> list[StoredMessage]:
        """The @original message (if any) and the followups, in order."""
        head = [self.original] if self.original is not None else []
        return head + [message for message in self.followups if message is not self.original]

    @property
    def text(self) -> str:
        """The content of the last reply, or "" when there is none."""
        replies = self.replies
        return replies[-1].content if replies else ""

    def describe(self) -> str:
        callbacks = [callback.get("type") for callback in self.callbacks]
        return f"interaction {self.id} (type {self.type}): callbacks {callbacks}, replies {self.replies}"

    async def wait_answered(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - public test API
        """Wait until the bot acknowledged the interaction (any callback)."""
        await self._signal.wait_until(
            lambda: self.acknowledged, timeout, lambda: f"no callback within {timeout}s: {self.describe()}"
        )

    async def wait_reply(
        self,
        predicate: Callable[[StoredMessage], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - public test API
    ) -> StoredMessage:
        """The first reply (original or followup) satisfying `predicate`, once there is one."""
        found: list[StoredMessage] = []

        def check() -> bool:
            found[:] = [message for message in self.replies if predicate(message)][:1]
            return bool(found)

        await self._signal.wait_until(check, timeout, lambda: f"no matching reply within {timeout}s: {self.describe()}")
        return found[0]

    async def wait_content(
        self,
        predicate: str | Callable[[str], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - public test API
    ) -> StoredMessage:
        """The first reply whose content contains `predicate` (a string) or satisfies it (a callable)."""
        test: Callable[[str], bool] = (lambda text: predicate in text) if isinstance(predicate, str) else predicate
        return await self.wait_reply(lambda message: test(message.content), timeout)

    def __repr__(self) -> str:
        return f"<Interaction id={self.id} type={self.type} callbacks={len(self.callbacks)}>"
