"""The plain REST routes of the fake Discord: the bot user and application, commands, channels, guilds."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from emulators.discord.messages import StoredMessage
from emulators.discord.models import Json, error_body, form_error
from emulators.discord.server import Call, DiscordServer, json_reply, no_content
from emulators.discord.state import ApiError

MAX_NONCE = 25


class DiscordRest(DiscordServer):
    """Users, application, command sync, channel messages and guild lookups.

    A message posted with `enforce_nonce` and a nonce its author used in the last `nonce_window` seconds is
    not posted again: the earlier message is returned (or 404 if it was deleted). Discord says only "the
    past few minutes"; the window is a switch, and 0 turns the check off.
    """

    nonce_window: float = 120.0
    _nonces: dict[tuple[int, str], tuple[StoredMessage, float]]

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._nonces = {}

    def _add_routes(self) -> None:
        super()._add_routes()
        self.route("GET", "/users/@me", self._get_me)
        self.route("GET", "/oauth2/applications/@me", self._get_application)
        for scope in ("/applications/{app}/commands", "/applications/{app}/guilds/{guild}/commands"):
            self.route("GET", scope, self._get_commands)
            self.route("PUT", scope, self._put_commands)
        self.route("GET", "/channels/{channel}", self._get_channel)
        self.route("POST", "/channels/{channel}/typing", self._typing)
        self.route("GET", "/channels/{channel}/messages", self._history)
        self.route("POST", "/channels/{channel}/messages", self._post_message)
        self.route("GET", "/channels/{channel}/messages/{message}", self._get_message)
        self.route("PATCH", "/channels/{channel}/messages/{message}", self._patch_message)
        self.route("DELETE", "/channels/{channel}/messages/{message}", self._delete_message)
        self.route("GET", "/guilds/{guild}", self._get_guild)
        self.route("GET", "/guilds/{guild}/roles", self._get_roles)
        self.route("GET", "/guilds/{guild}/channels", self._get_channels)
        self.route("GET", "/guilds/{guild}/members/{user}", self._get_member)

    # -- helpers for handlers --------------------------------------------------------------------

    def _check_guild(self, call: Call) -> None:
        if call.snowflake("guild") != self.guild_id:
            raise ApiError(404, error_body("Unknown Guild", 10004))

    def _check_application(self, call: Call) -> None:
        if call.params["app"] != str(self.application_id):
            raise ApiError(403, error_body("Missing Access", 50001))

    # -- plain REST routes -----------------------------------------------------------------------

    async def _get_me(self, call: Call) -> web.Response:
        return json_reply(self.bot.user_payload())

    async def _get_application(self, call: Call) -> web.Response:
        return json_reply(
            {
                "id": str(self.application_id),
                "name": self.bot.name,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot_public": self.bot_public,
                "bot_require_code_grant": False,
                "verify_key": hashlib.sha256(self.token.encode()).hexdigest(),
                "owner": self.owner.user_payload(),
                "team": None,
                "flags": 0,
                # Non-null would tell discord.py that interactions arrive over HTTP, not the gateway.
                "interactions_endpoint_url": None,
                "rpc_origins": [],
                "redirect_uris": [],
                "tags": [],
                "bot": self.bot.user_payload(),
                "approximate_guild_count": 1,
                "integration_types_config": {"0": {}},
            }
        )

    def _command_scope(self, call: Call) -> int | None:
        self._check_application(call)
        if "guild" in call.params:
            self._check_guild(call)
            return self.guild_id
        return None

    async def _get_commands(self, call: Call) -> web.Response:
        guild_id = self._command_scope(call)
        commands = self.commands["global"] if guild_id is None else self.commands["guilds"].get(guild_id, [])
        return json_reply(commands)

    async def _put_commands(self, call: Call) -> web.Response:
        guild_id = self._command_scope(call)
        if not isinstance(call.body, list):
            raise ApiError(400, form_error("_", "LIST_TYPE_CONVERT", "Must be an array"))
        synced: list[Json] = []
        seen: set[tuple[str, int]] = set()
        for index, command in enumerate(call.body):
            if not isinstance(command, dict) or not command.get("name"):
                raise ApiError(400, form_error(str(index), "BASE_TYPE_REQUIRED", "name: This field is required"))
            kind = int(command.get("type") or 1)
            if (command["name"], kind) in seen:
                raise ApiError(400, form_error(str(index), "APPLICATION_COMMANDS_DUPLICATE_NAME", "Duplicate name"))
            seen.add((command["name"], kind))
            key = (guild_id, command["name"], kind)
            command_id = self._command_ids.setdefault(key, self.snowflakes.next())
            echoed = command | {
                "id": str(command_id),
                "application_id": str(self.application_id),
                "version": str(self.snowflakes.next()),
                "type": kind,
                "description": command.get("description") or "",
                "default_member_permissions": command.get("default_member_permissions"),
                "nsfw": bool(command.get("nsfw", False)),
            }
            if guild_id is not None:
                echoed["guild_id"] = str(guild_id)
            synced.append(echoed)
        if guild_id is None:
            self.commands["global"] = synced
        else:
            self.commands["guilds"][guild_id] = synced
        self.commands["sync_count"] += 1
        return json_reply(synced)

    async def _get_channel(self, call: Call) -> web.Response:
        return json_reply(self.channel(call.snowflake("channel")).to_payload())

    async def _typing(self, call: Call) -> web.Response:
        self.channel(call.snowflake("channel"))
        return no_content()

    async def _history(self, call: Call) -> web.Response:
        channel_id = self.channel(call.snowflake("channel")).id
        query = call.request.query
        try:
            limit = max(1, min(100, int(query.get("limit", "50"))))
            before = int(query.get("before", str(1 << 63)))
            after = int(query.get("after", "0"))
        except ValueError:
            raise ApiError(400, form_error("limit", "NUMBER_TYPE_COERCE", "Invalid query value")) from None
        found = [
            message
            for message in self.messages.values()
            if message.channel_id == channel_id
            and not message.deleted
            and not message.ephemeral
            and after < message.id < before
        ]
        # Newest first, unless paging forward with `after`.
        chosen = found[:limit] if "after" in query and "before" not in query else found[::-1][:limit]
        return json_reply([message.to_payload() for message in sorted(chosen, key=lambda m: -m.id)])

    async def _post_message(self, call: Call) -> web.Response:
        channel_id = self.channel(call.snowflake("channel")).id
        body = call.body if call.body is not None else {}
        nonce = body.get("nonce") if isinstance(body, dict) else None
        if nonce is not None and len(str(nonce)) > MAX_NONCE:
            raise ApiError(400, form_error("nonce", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."))
        key = (self.bot_user_id, str(nonce))
        if nonce is not None and body.get("enforce_nonce"):
            earlier = self._nonces.get(key)
            if earlier is not None and self.clock.now() - earlier[1] <= self.nonce_window:
                if earlier[0].deleted:
                    # Discord refuses a nonce whose message was deleted shortly before, instead of reposting.
                    raise ApiError(404, error_body("Unknown Message", 10008))
                return json_reply(earlier[0].to_payload())
        message = self.create_message(channel_id=channel_id, author=self.bot, body=body, uploads=call.uploads)
        if nonce is not None:
            self._nonces[key] = (message, self.clock.now())
        return json_reply(message.to_payload())

    def _channel_message(self, call: Call) -> StoredMessage:
        message = self.live_message(call.snowflake("message"), call.snowflake("channel"))
        if message.ephemeral:
            # Ephemeral messages exist only for their interaction's webhook.
            raise ApiError(404, error_body("Unknown Message", 10008))
        return message

    async def _get_message(self, call: Call) -> web.Response:
        return json_reply(self._channel_message(call).to_payload())

    async def _patch_message(self, call: Call) -> web.Response:
        message = self._channel_message(call)
        if message.author.id != self.bot_user_id:
            raise ApiError(403, error_body("Cannot edit a message authored by another user", 50005))
        self.edit_message(message, call.body if call.body is not None else {}, call.uploads)
        return json_reply(message.to_payload())

    async def _delete_message(self, call: Call) -> web.Response:
        self.remove_message(self._channel_message(call))
        return no_content()

    async def _get_guild(self, call: Call) -> web.Response:
        self._check_guild(call)
        payload = self.guild.to_payload(full=False)
        if call.flag("with_counts"):
            payload |= {"approximate_member_count": len(self.guild.members), "approximate_presence_count": 0}
        return json_reply(payload)

    async def _get_roles(self, call: Call) -> web.Response:
        self._check_guild(call)
        return json_reply([role.to_payload() for role in self.guild.roles.values()])

    async def _get_channels(self, call: Call) -> web.Response:
        self._check_guild(call)
        return json_reply([channel.to_payload() for channel in self.guild.channels.values()])

    async def _get_member(self, call: Call) -> web.Response:
        self._check_guild(call)
        member = self.guild.members.get(call.snowflake("user"))
        if member is None:
            raise ApiError(404, error_body("Unknown Member", 10007))
        return json_reply(self.guild.member_payload(member))
