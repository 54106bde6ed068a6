"""The fake Discord's world: clock, snowflakes, guild objects and their JSON payloads."""

from __future__ import annotations

import io
import mimetypes
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from PIL import Image, UnidentifiedImageError

Json = dict[str, Any]

DISCORD_EPOCH_MS: Final = 1_420_070_400_000

#: attachment flag: the file was uploaded as a spoiler (its name begins with SPOILER_)
ATTACHMENT_SPOILER: Final = 1 << 3
SPOILER_PREFIX: Final = "SPOILER_"

EPHEMERAL: Final = 1 << 6
LOADING: Final = 1 << 7
IS_COMPONENTS_V2: Final = 1 << 15

ADMINISTRATOR: Final = 1 << 3
MANAGE_GUILD: Final = 1 << 5
MANAGE_MESSAGES: Final = 1 << 13
ALL_PERMISSIONS: Final = (1 << 51) - 1
# What a fresh guild grants @everyone: read, write, attach, embed, react, use commands.
EVERYONE_PERMISSIONS: Final = (
    (1 << 0) | (1 << 6) | (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 18) | (1 << 26) | (1 << 31)
)

GUILD_TEXT: Final = 0
# Gateway intents the emulator honours when dispatching events.
INTENT_GUILDS: Final = 1 << 0
INTENT_GUILD_MEMBERS: Final = 1 << 1
INTENT_GUILD_MESSAGES: Final = 1 << 9
INTENT_MESSAGE_CONTENT: Final = 1 << 15


class EmulatedClock:
    """Wall-clock time plus an offset that `advance` moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the emulated clock only moves forward")
        self.offset += seconds

    def iso(self, at: float | None = None) -> str:
        return datetime.fromtimestamp(self.now() if at is None else at, UTC).isoformat()


class Snowflakes:
    """Time-based ids from the emulated clock; strictly increasing even within one millisecond."""

    def __init__(self, clock: EmulatedClock) -> None:
        self._clock = clock
        self._last = 0

    def next(self) -> int:
        candidate = (int(self._clock.now() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(candidate, self._last + 1)
        return self._last


def error_body(message: str, code: int, errors: Json | None = None) -> Json:
    body: Json = {"message": message, "code": code}
    if errors is not None:
        body["errors"] = errors
    return body


def form_error(path: str, code: str, message: str) -> Json:
    """Discord's 50035 body for one bad field; a dotted `path` ("embeds.0.title") nests as Discord nests it."""
    errors: Json = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path.split(".")):
        errors = {key: errors}
    return error_body("Invalid Form Body", 50035, errors)


@dataclass(eq=False)
class Role:
    """A guild role; `permissions` is the raw bit set."""

    id: int
    name: str
    permissions: int = 0
    position: int = 1
    managed: bool = False

    def to_payload(self) -> Json:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": self.managed,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


@dataclass(eq=False)
class Channel:
    """A guild text channel."""

    id: int
    guild_id: int
    name: str
    nsfw: bool = False
    position: int = 0
    last_message_id: int | None = None

    def to_payload(self) -> Json:
        return {
            "id": str(self.id),
            "type": GUILD_TEXT,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "nsfw": self.nsfw,
            "parent_id": None,
            "topic": None,
            "last_message_id": None if self.last_message_id is None else str(self.last_message_id),
            "rate_limit_per_user": 0,
            "flags": 0,
        }


@dataclass(eq=False)
class Member:
    """A user in the guild; the two flags grant Manage Server / Manage Messages on top of the roles."""

    id: int
    name: str
    manage_guild: bool = False
    manage_messages: bool = False
    roles: list[int] = field(default_factory=list)
    bot: bool = False
    joined_at: str = "2025-01-01T00:00:00+00:00"

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def user_payload(self) -> Json:
        payload: Json = {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "public_flags": 0,
        }
        if self.bot:
            payload |= {"bot": True, "discriminator": "0000", "flags": 0, "verified": True, "mfa_enabled": False}
        return payload


class Guild:
    """The one guild of the emulated world, with its channels, roles and members."""

    def __init__(self, guild_id: int, name: str, owner_id: int) -> None:
        self.id = guild_id
        self.name = name
        self.owner_id = owner_id
        # @everyone shares the guild's id, as on Discord.
        self.roles: dict[int, Role] = {guild_id: Role(guild_id, "@everyone", EVERYONE_PERMISSIONS, position=0)}
        self.channels: dict[int, Channel] = {}
        self.members: dict[int, Member] = {}

    def permissions_of(self, member: Member) -> int:
        bits = self.roles[self.id].permissions
        for role_id in member.roles:
            role = self.roles.get(role_id)
            if role is not None:
                bits |= role.permissions
        if member.manage_guild:
            bits |= MANAGE_GUILD
        if member.manage_messages:
            bits |= MANAGE_MESSAGES
        if bits & ADMINISTRATOR or member.id == self.owner_id:
            return ALL_PERMISSIONS
        return bits

    def member_payload(self, member: Member, *, with_user: bool = True, with_permissions: bool = False) -> Json:
        payload: Json = {
            "roles": [str(role_id) for role_id in member.roles],
            "nick": None,
            "avatar": None,
            "banner": None,
            "joined_at": member.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_user:
            payload["user"] = member.user_payload()
        if with_permissions:
            payload["permissions"] = str(self.permissions_of(member))
        return payload

    def to_payload(self, *, full: bool) -> Json:
        """The guild object; `full` adds what only GUILD_CREATE carries (channels, members, counts)."""
        payload: Json = {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "features": [],
            "roles": [role.to_payload() for role in self.roles.values()],
            "emojis": [],
            "stickers": [],
        }
        if full:
            payload |= {
                "unavailable": False,
                "large": False,
                "joined_at": "2025-01-01T00:00:00+00:00",
                # Equal to len(members) so a client with the members intent does not ask for chunks.
                "member_count": len(self.members),
                "channels": [channel.to_payload() for channel in self.channels.values()],
                "members": [self.member_payload(member) for member in self.members.values()],
                "threads": [],
                "presences": [],
                "voice_states": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
            }
        return payload


def sniff_image(data: bytes) -> tuple[str, int, int] | None:
    """(content type, width, height) when `data` is an image Pillow can identify from its header."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            mime = Image.MIME.get(image.format or "")
            return (mime, image.width, image.height) if mime else None
    except (UnidentifiedImageError, OSError, ValueError):
        return None


@dataclass(eq=False)
class StoredAttachment:
    """An uploaded file, served back by the emulator's CDN at `url`."""

    id: int
    filename: str
    content_type: str
    data: bytes
    url: str
    width: int | None = None
    height: int | None = None
    ephemeral: bool = False
    description: str | None = None

    @classmethod
    def create(
        cls,
        *,
        attachment_id: int,
        filename: str,
        data: bytes,
        declared_type: str | None,
        url: str,
        ephemeral: bool = False,
        description: str | None = None,
    ) -> StoredAttachment:
        """Like Discord, trust the bytes over the declared type: uploads from discord.py say octet-stream."""
        image = sniff_image(data)
        if image is not None:
            content_type, width, height = image
            return cls(attachment_id, filename, content_type, data, url, width, height, ephemeral, description)
        content_type = declared_type or ""
        if content_type in ("", "application/octet-stream"):
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return cls(attachment_id, filename, content_type, data, url, None, None, ephemeral, description)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def spoiler(self) -> bool:
        """Uploaded as a spoiler: Discord marks a file whose name begins with SPOILER_ and keeps the name."""
        return self.filename.startswith(SPOILER_PREFIX)

    def to_payload(self) -> Json:
        payload: Json = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
            "content_type": self.content_type,
            "flags": ATTACHMENT_SPOILER if self.spoiler else 0,
        }
        if self.width is not None:
            payload["width"] = self.width
            payload["height"] = self.height
        if self.description is not None:
            payload["description"] = self.description
        if self.ephemeral:
            payload["ephemeral"] = True
        return payload
