"""The fake Discord's state: the world, the message store, interactions, and the events they cause."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypedDict
from urllib.parse import quote

from emulators.discord.gateway import Gateway, GatewaySession
from emulators.discord.messages import ChangeSignal, Interaction, RecordedRequest, StoredMessage
from emulators.discord.models import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGES,
    INTENT_MESSAGE_CONTENT,
    IS_COMPONENTS_V2,
    LOADING,
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    Channel,
    EmulatedClock,
    Guild,
    Json,
    Member,
    Role,
    Snowflakes,
    StoredAttachment,
    error_body,
    form_error,
)
from emulators.discord.validation import message_problem

# Interaction tokens (and the followup webhook behind them) live 15 minutes.
TOKEN_LIFETIME: Final = 15 * 60.0
# Flags a message author may set; EPHEMERAL only through interactions.
SETTABLE_FLAGS: Final = (1 << 2) | (1 << 12) | IS_COMPONENTS_V2
MAX_FILES: Final = 10


# What the bot synced: global definitions, per-guild definitions, and the number of PUTs.
SyncedCommands = TypedDict("SyncedCommands", {"global": list[Json], "guilds": dict[int, list[Json]], "sync_count": int})


class ApiError(Exception):
    """An error answer with Discord's JSON body."""

    def __init__(self, status: int, body: Json) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def unknown_message() -> ApiError:
    return ApiError(404, error_body("Unknown Message", 10008))


@dataclass(frozen=True, slots=True)
class Upload:
    """One `files[n]` part of a multipart request."""

    index: int
    filename: str
    content_type: str
    data: bytes


class DiscordState:
    """Everything the emulated Discord knows, and the rules for changing it."""

    def __init__(self, *, bot_name: str = "Fluxcord", upload_limit: int = 10 * 1024 * 1024) -> None:
        self.clock = EmulatedClock()
        self.snowflakes = Snowflakes(self.clock)
        self.signal = ChangeSignal()
        self.upload_limit = upload_limit
        #: the developer portal's "Public Bot" switch: whether anyone may add the bot to a server
        self.bot_public = False
        self.application_id = self.snowflakes.next()
        self.bot_user_id = self.snowflakes.next()
        encoded_id = base64.urlsafe_b64encode(str(self.bot_user_id).encode()).decode().rstrip("=")
        self.token = f"{encoded_id}.emulated.{secrets.token_urlsafe(27)}"
        self.gateway = Gateway(
            token=self.token,
            signal=self.signal,
            on_identify=self._ready_events,
            on_request_members=self._members_chunk,
        )
        self._root: str | None = None
        self.guild_id = self.snowflakes.next()
        #: the application's owner; not a guild member
        self.owner = Member(self.snowflakes.next(), "owner")
        self.guild = Guild(self.guild_id, f"{bot_name} Test Server", owner_id=self.owner.id)
        bot_role = Role(self.snowflakes.next(), bot_name, ALL_PERMISSIONS & ~ADMINISTRATOR, position=1, managed=True)
        self.guild.roles[bot_role.id] = bot_role
        self.bot = Member(self.bot_user_id, bot_name, roles=[bot_role.id], bot=True)
        self.guild.members[self.bot.id] = self.bot
        self.channel_id = self.add_channel("general")
        self.nsfw_channel_id = self.add_channel("art-18", nsfw=True)
        self.messages: dict[int, StoredMessage] = {}
        self.attachments: dict[int, StoredAttachment] = {}
        self.interactions: dict[int, Interaction] = {}
        self.requests: list[RecordedRequest] = []
        self.commands: SyncedCommands = {"global": [], "guilds": {}, "sync_count": 0}
        self._command_ids: dict[tuple[int | None, str, int], int] = {}

    # -- the world -------------------------------------------------------------------------------

    def add_member(
        self, name: str, *, manage_guild: bool = False, manage_messages: bool = False, roles: list[int] | None = None
    ) -> Member:
        """A new guild member; the flags grant Manage Server / Manage Messages through shared roles."""
        granted = list(roles or [])
        for role_id in granted:
            if role_id not in self.guild.roles:
                raise KeyError(f"no role {role_id}; add it with add_role() first")
        # Through roles, so the bot's cached member and the interaction's `permissions` agree.
        if manage_guild:
            granted.append(self._permission_role("Manage Server", MANAGE_GUILD))
        if manage_messages:
            granted.append(self._permission_role("Manage Messages", MANAGE_MESSAGES))
        member = Member(self.snowflakes.next(), name, manage_guild, manage_messages, granted)
        member.joined_at = self.clock.iso()
        self.guild.members[member.id] = member
        if self.gateway.intents & INTENT_GUILD_MEMBERS:
            self.gateway.dispatch(
                "GUILD_MEMBER_ADD", self.guild.member_payload(member) | {"guild_id": str(self.guild_id)}
            )
        return member

    def _permission_role(self, name: str, permissions: int) -> int:
        existing = next(
            (r.id for r in self.guild.roles.values() if r.name == name and r.permissions == permissions), None
        )
        return existing if existing is not None else self.add_role(name, permissions=permissions)

    def add_role(self, name: str, *, permissions: int = 0) -> int:
        role = Role(self.snowflakes.next(), name, permissions, position=len(self.guild.roles))
        self.guild.roles[role.id] = role
        self.gateway.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(self.guild_id), "role": role.to_payload()})
        return role.id

    def add_channel(self, name: str, *, nsfw: bool = False) -> int:
        channel = Channel(self.snowflakes.next(), self.guild_id, name, nsfw, position=len(self.guild.channels))
        self.guild.channels[channel.id] = channel
        self.gateway.dispatch("CHANNEL_CREATE", channel.to_payload())
        return channel.id

    def channel(self, channel_id: int) -> Channel:
        try:
            return self.guild.channels[channel_id]
        except KeyError:
            raise ApiError(404, error_body("Unknown Channel", 10003)) from None

    def _ready_events(self, session: GatewaySession) -> list[tuple[str, Json]]:
        ready: Json = {
            "v": 10,
            "user": self.bot.user_payload(),
            "guilds": [{"id": str(self.guild_id), "unavailable": True}],
            "session_id": session.id,
            "resume_gateway_url": self.gateway_url,
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "shard": [0, 1],
            "application": {"id": str(self.application_id), "flags": 0},
        }
        return [("READY", ready), ("GUILD_CREATE", self.guild.to_payload(full=True))]

    def _members_chunk(self, request: Json) -> Json | None:
        if str(request.get("guild_id")) != str(self.guild_id):
            return None
        members = [self.guild.member_payload(member) for member in self.guild.members.values()]
        chunk: Json = {"guild_id": str(self.guild_id), "members": members, "chunk_index": 0, "chunk_count": 1}
        if request.get("nonce") is not None:
            chunk["nonce"] = request["nonce"]
        return chunk

    # -- addresses -------------------------------------------------------------------------------

    @property
    def root(self) -> str:
        if self._root is None:
            raise RuntimeError("the Discord emulator is not started")
        return self._root

    @property
    def api_base(self) -> str:
        return f"{self.root}/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.root.replace("http://", "ws://", 1) + "/gateway"

    # -- attachments and messages ----------------------------------------------------------------

    def store_attachment(
        self,
        channel_id: int,
        filename: str,
        data: bytes,
        declared_type: str | None,
        *,
        ephemeral: bool = False,
        description: str | None = None,
    ) -> StoredAttachment:
        attachment_id = self.snowflakes.next()
        url = f"{self.root}/attachments/{channel_id}/{attachment_id}/{quote(filename)}"
        attachment = StoredAttachment.create(
            attachment_id=attachment_id,
            filename=filename,
            data=data,
            declared_type=declared_type,
            url=url,
            ephemeral=ephemeral,
            description=description,
        )
        self.attachments[attachment_id] = attachment
        return attachment

    def _attachments_for(
        self, channel_id: int, listed: Any, uploads: Sequence[Upload], kept: list[StoredAttachment]
    ) -> list[StoredAttachment]:
        """The attachment list after a create or edit: listed kept ids, then listed (or all) new uploads."""
        by_index = {upload.index: upload for upload in uploads}
        if listed is None:
            entries: list[Json] = [{"id": upload.index} for upload in uploads]
            result = list(kept)
        elif isinstance(listed, list):
            entries, result = [], []
            kept_by_id = {attachment.id: attachment for attachment in kept}
            for entry in listed:
                attachment_id = _as_int(entry.get("id")) if isinstance(entry, dict) else -1
                if attachment_id in kept_by_id:
                    result.append(kept_by_id[attachment_id])
                elif attachment_id in by_index:
                    entries.append(entry)
                else:
                    raise ApiError(400, form_error("attachments", "ATTACHMENT_NOT_FOUND", "Unknown attachment"))
        else:
            raise ApiError(400, form_error("attachments", "LIST_TYPE_CONVERT", "Must be an array"))
        for entry in entries:
            upload = by_index[int(entry["id"])]
            filename = str(entry.get("filename") or upload.filename)
            description = entry.get("description")
            result.append(
                self.store_attachment(channel_id, filename, upload.data, upload.content_type, description=description)
            )
        if len(result) > MAX_FILES:
            raise ApiError(400, form_error("attachments", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."))
        return result

    @staticmethod
    def _validate(content: str, embeds: list[Json], components: list[Json], flags: int, files: int) -> None:
        problem = message_problem(content, embeds, components, flags, files)
        if problem is not None:
            raise ApiError(400, problem)

    def create_message(
        self,
        *,
        channel_id: int,
        author: Member,
        body: Json,
        uploads: Sequence[Upload] = (),
        files: Sequence[StoredAttachment] = (),
        flags: int = 0,
        kind: int = 0,
        interaction: Interaction | None = None,
        placeholder: bool = False,
    ) -> StoredMessage:
        """Store a new message from a create payload (plus already stored `files`).

        `placeholder` marks the empty "thinking" message of a deferred interaction, which skips validation.
        """
        channel = self.channel(channel_id)
        if not isinstance(body, dict):
            raise ApiError(400, form_error("_", "DICT_TYPE_CONVERT", "Only dictionaries may be used"))
        content = str(body.get("content") or "")
        embeds = list(body.get("embeds") or [])
        components = list(body.get("components") or [])
        flags |= int(body.get("flags") or 0) & SETTABLE_FLAGS
        attachments = [*files, *self._attachments_for(channel_id, body.get("attachments"), uploads, [])]
        if not placeholder:
            self._validate(content, embeds, components, flags, len(attachments))
        message = StoredMessage(
            id=self.snowflakes.next(),
            channel_id=channel_id,
            guild_id=self.guild_id,
            author=author,
            timestamp=self.clock.iso(),
            content=content,
            embeds=embeds,
            components=components,
            attachments=attachments,
            flags=flags,
            type=kind,
            tts=bool(body.get("tts")),
            nonce=body.get("nonce"),
        )
        if interaction is not None:
            message.webhook_id = message.application_id = self.application_id
            message.interaction_metadata = self._interaction_metadata(interaction)
        reference = body.get("message_reference")
        if isinstance(reference, dict) and reference.get("message_id"):
            message.message_reference = reference | {"channel_id": str(channel_id), "guild_id": str(self.guild_id)}
        message.snapshot()
        self.messages[message.id] = message
        if not message.ephemeral:
            channel.last_message_id = message.id
            self._dispatch_message("MESSAGE_CREATE", message)
        self.signal.bump()
        return message

    def edit_message(self, message: StoredMessage, body: Json, uploads: Sequence[Upload] = ()) -> None:
        """Apply an edit payload: absent fields stay, `attachments` lists exactly what remains."""
        if not isinstance(body, dict):
            raise ApiError(400, form_error("_", "DICT_TYPE_CONVERT", "Only dictionaries may be used"))
        content = str(body.get("content") or "") if "content" in body else message.content
        embeds = list(body.get("embeds") or []) if "embeds" in body else message.embeds
        components = list(body.get("components") or []) if "components" in body else message.components
        flags = message.flags & ~LOADING
        if body.get("flags") is not None:
            flags = (
                (flags & ~SETTABLE_FLAGS) | (int(body["flags"]) & SETTABLE_FLAGS) | (message.flags & IS_COMPONENTS_V2)
            )
        attachments = self._attachments_for(message.channel_id, body.get("attachments"), uploads, message.attachments)
        self._validate(content, embeds, components, flags, len(attachments))
        if not message.loading:
            message.edited_timestamp = self.clock.iso()
        message.content, message.embeds, message.components = content, embeds, components
        message.flags, message.attachments = flags, attachments
        message.snapshot()
        if not message.ephemeral:
            self._dispatch_message("MESSAGE_UPDATE", message)
        self.signal.bump()

    def remove_message(self, message: StoredMessage) -> None:
        message.deleted = True
        if not message.ephemeral:
            self.gateway.dispatch(
                "MESSAGE_DELETE",
                {"id": str(message.id), "channel_id": str(message.channel_id), "guild_id": str(self.guild_id)},
            )
        self.signal.bump()

    def live_message(self, message_id: int, channel_id: int | None = None) -> StoredMessage:
        message = self.messages.get(message_id)
        if message is None or message.deleted or (channel_id is not None and message.channel_id != channel_id):
            raise unknown_message()
        return message

    def _dispatch_message(self, event: str, message: StoredMessage) -> None:
        intents = self.gateway.intents
        if not intents & INTENT_GUILD_MESSAGES:
            return
        payload = message.to_payload() | {"guild_id": str(self.guild_id)}
        payload["member"] = self.guild.member_payload(message.author, with_user=False)
        if not intents & INTENT_MESSAGE_CONTENT and message.author.id != self.bot_user_id:
            # Without the privileged intent Discord blanks other users' message bodies.
            payload |= {"content": "", "embeds": [], "attachments": [], "components": []}
        self.gateway.dispatch(event, payload)

    # -- interactions ----------------------------------------------------------------------------

    def _interaction_metadata(self, interaction: Interaction) -> Json:
        metadata: Json = {
            "id": str(interaction.id),
            "type": interaction.type,
            "user": interaction.user.user_payload(),
            "authorizing_integration_owners": {"0": str(self.guild_id)},
        }
        data = interaction.payload.get("data") or {}
        if interaction.type == 2:
            metadata["name"] = data.get("name")
            metadata["command_type"] = data.get("type", 1)
            if data.get("type") == 3:
                metadata["target_message_id"] = data.get("target_id")
        if interaction.message is not None:
            metadata["interacted_message_id"] = str(interaction.message.id)
        if interaction.original is not None and interaction.type != 2:
            metadata["original_response_message_id"] = str(interaction.original.id)
        return metadata

    def interaction_by_token(self, token: str, *, application_id: str | None = None) -> Interaction:
        """The interaction behind a webhook token, or the 404/401 Discord answers for it."""
        interaction = next((i for i in self.interactions.values() if i.token == token), None)
        if interaction is None or (application_id is not None and application_id != str(self.application_id)):
            raise ApiError(404, error_body("Unknown Webhook", 10015))
        if self.expired(interaction):
            raise ApiError(401, error_body("Invalid Webhook Token", 50027))
        if not interaction.acknowledged:
            raise ApiError(404, error_body("Unknown Webhook", 10015))
        return interaction

    def expired(self, interaction: Interaction) -> bool:
        return self.clock.now() - interaction.created_at > TOKEN_LIFETIME
