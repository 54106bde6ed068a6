"""Interactions in the fake Discord: the INTERACTION_CREATE factory, callbacks and the interaction webhook."""

from __future__ import annotations

import secrets
from typing import Final

from aiohttp import web

from emulators.discord.messages import CHAT_INPUT_COMMAND, CONTEXT_MENU_COMMAND, DEFAULT, Interaction, StoredMessage
from emulators.discord.models import ALL_PERMISSIONS, EPHEMERAL, LOADING, Json, Member, error_body, form_error
from emulators.discord.rest import DiscordRest
from emulators.discord.server import Call, json_reply, no_content
from emulators.discord.state import ApiError, unknown_message
from emulators.discord.validation import choices_problem

# Which callback types each interaction type accepts (2 command, 3 component, 4 autocomplete, 5 modal submit).
ALLOWED_CALLBACKS: Final[dict[int, frozenset[int]]] = {
    2: frozenset({4, 5, 9}),
    3: frozenset({4, 5, 6, 7, 9}),
    4: frozenset({8}),
    5: frozenset({4, 5, 6, 7}),
}


class DiscordWebhooks(DiscordRest):
    """Builds interactions and answers the bot's callbacks, followups and @original edits."""

    def _add_routes(self) -> None:
        super()._add_routes()
        self.route("POST", "/interactions/{interaction}/{token}/callback", self._callback, auth=False)
        self.route("POST", "/webhooks/{app}/{token}", self._followup, auth=False)
        for method, handler in (("GET", self._get_reply), ("PATCH", self._patch_reply), ("DELETE", self._delete_reply)):
            self.route(method, "/webhooks/{app}/{token}/messages/{message}", handler, auth=False)

    # -- building interactions -------------------------------------------------------------------

    def new_interaction(
        self,
        kind: int,
        *,
        user: Member,
        channel_id: int | None,
        data: Json,
        message: StoredMessage | None = None,
        message_payload: Json | None = None,
    ) -> Interaction:
        """Create, register and dispatch one INTERACTION_CREATE; fails if no bot is connected.

        `message_payload` replaces what the interaction says about `message` (a modified client's forgery).
        """
        channel = self.channel(self.channel_id if channel_id is None else channel_id)
        if user.id not in self.guild.members:
            raise KeyError(f"{user.name} is not a member of the guild; use add_member()")
        if self.gateway.live is None:
            raise RuntimeError("no bot is connected to the gateway")
        interaction_id = self.snowflakes.next()
        token = f"aW50ZXJhY3Rpb246{interaction_id}:{secrets.token_urlsafe(48)}"
        permissions = str(self.guild.permissions_of(user))
        payload: Json = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "token": token,
            "version": 1,
            "guild_id": str(self.guild_id),
            "guild": {"id": str(self.guild_id), "locale": "en-US", "features": []},
            "channel_id": str(channel.id),
            "channel": channel.to_payload() | {"permissions": permissions},
            "member": self.guild.member_payload(user, with_permissions=True),
            "app_permissions": str(self.guild.permissions_of(self.bot) & ALL_PERMISSIONS),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "context": 0,
            "attachment_size_limit": self.upload_limit,
            "data": data,
        }
        if message is not None:
            payload["message"] = message_payload if message_payload is not None else message.to_payload()
        interaction = Interaction(
            interaction_id=interaction_id,
            token=token,
            kind=kind,
            user=user,
            channel_id=channel.id,
            payload=payload,
            created_at=self.clock.now(),
            signal=self.signal,
            message=message,
        )
        self.interactions[interaction_id] = interaction
        self.gateway.dispatch("INTERACTION_CREATE", payload)
        self.signal.bump()
        return interaction

    @staticmethod
    def _message_kind(interaction: Interaction) -> int:
        if interaction.type != 2:
            return DEFAULT
        return CHAT_INPUT_COMMAND if (interaction.payload["data"].get("type") or 1) == 1 else CONTEXT_MENU_COMMAND

    # -- POST /interactions/{id}/{token}/callback ------------------------------------------------

    async def _callback(self, call: Call) -> web.Response:
        interaction = self.interactions.get(call.snowflake("interaction"))
        if interaction is None or interaction.token != call.params["token"] or self.expired(interaction):
            raise ApiError(404, error_body("Unknown interaction", 10062))
        if interaction.acknowledged:
            raise ApiError(400, error_body("Interaction has already been acknowledged.", 40060))
        body = call.body
        if not isinstance(body, dict) or not isinstance(body.get("type"), int):
            raise ApiError(400, form_error("type", "BASE_TYPE_REQUIRED", "This field is required"))
        kind, data = body["type"], body.get("data") or {}
        if not isinstance(data, dict):
            raise ApiError(400, form_error("data", "DICT_TYPE_CONVERT", "Only dictionaries may be used"))
        if kind not in ALLOWED_CALLBACKS[interaction.type] or (kind in (6, 7) and interaction.message is None):
            raise ApiError(400, form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid response type"))
        message: StoredMessage | None = None
        resource: Json | None = {"type": kind}
        if kind in (4, 5):
            flags = int(data.get("flags") or 0) & EPHEMERAL
            message = self.create_message(
                channel_id=interaction.channel_id,
                author=self.bot,
                body={} if kind == 5 else data,
                uploads=call.uploads,
                flags=flags | (LOADING if kind == 5 else 0),
                kind=self._message_kind(interaction),
                interaction=interaction,
                placeholder=kind == 5,
            )
        elif kind in (6, 7):
            message = interaction.message
            assert message is not None
            if message.deleted:
                raise unknown_message()
            if kind == 7:
                self.edit_message(message, data, call.uploads)
            else:
                resource = None
        elif kind == 8:
            choices = data.get("choices")
            problem = choices_problem(choices)
            if problem is not None:
                raise ApiError(400, problem)
            interaction.choices = choices
            resource = None
        else:
            interaction.modal = data
        interaction.callbacks.append(body)
        interaction.original = message if message is not None else interaction.original
        self.signal.bump()
        if not call.flag("with_response"):
            return no_content()
        answer: Json = {"interaction": {"id": str(interaction.id), "type": interaction.type}}
        if message is not None:
            answer["interaction"] |= {
                "response_message_id": str(message.id),
                "response_message_loading": message.loading,
                "response_message_ephemeral": message.ephemeral,
            }
            if kind in (4, 7) and resource is not None:
                resource["message"] = message.to_payload()
        if resource is not None:
            answer["resource"] = resource
        return json_reply(answer)

    # -- the interaction webhook -----------------------------------------------------------------

    async def _followup(self, call: Call) -> web.Response:
        interaction = self.interaction_by_token(call.params["token"], application_id=call.params["app"])
        body = call.body if call.body is not None else {}
        original = interaction.original
        if original is not None and original.loading and not original.deleted:
            # The first followup after a "thinking" defer replaces the placeholder and keeps its visibility.
            self.edit_message(original, body, call.uploads)
            message = original
        else:
            message = self.create_message(
                channel_id=interaction.channel_id,
                author=self.bot,
                body=body,
                uploads=call.uploads,
                flags=int(body.get("flags") or 0) & EPHEMERAL if isinstance(body, dict) else 0,
                kind=self._message_kind(interaction),
                interaction=interaction,
            )
            interaction.followups.append(message)
            self.signal.bump()
        if call.request.query.get("wait", "").lower() not in ("1", "true"):
            return no_content()
        return json_reply(message.to_payload())

    def _reply_message(self, call: Call) -> StoredMessage:
        interaction = self.interaction_by_token(call.params["token"], application_id=call.params["app"])
        if call.params["message"] == "@original":
            message = interaction.original
        else:
            wanted = call.snowflake("message")
            message = next((reply for reply in interaction.replies if reply.id == wanted), None)
        if message is None or message.deleted:
            raise unknown_message()
        return message

    async def _get_reply(self, call: Call) -> web.Response:
        return json_reply(self._reply_message(call).to_payload())

    async def _patch_reply(self, call: Call) -> web.Response:
        message = self._reply_message(call)
        self.edit_message(message, call.body if call.body is not None else {}, call.uploads)
        return json_reply(message.to_payload())

    async def _delete_reply(self, call: Call) -> web.Response:
        self.remove_message(self._reply_message(call))
        return no_content()
