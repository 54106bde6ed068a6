"""Synced commands as a member's client sees them: lookup, visibility, and the `data.options` it sends."""

from __future__ import annotations

from typing import Final

from emulators.discord.interactions import DiscordWebhooks
from emulators.discord.models import ADMINISTRATOR, Json, Member

SUB_COMMAND: Final = 1
SUB_COMMAND_GROUP: Final = 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = range(3, 12)

#: an attachment a member uploads: (filename, bytes, content type)
Upload = tuple[str, bytes, str]


class DiscordCommands(DiscordWebhooks):
    """Finds synced commands and builds the options Discord's client would send (or, `unchecked`, anything)."""

    def find_command(self, name: str, kind: int = 1) -> tuple[Json, int | None]:
        """The synced definition (guild commands first, then global) and its guild id, or LookupError."""
        scopes: list[tuple[list[Json], int | None]] = [
            (self.commands["guilds"].get(self.guild_id, []), self.guild_id),
            (self.commands["global"], None),
        ]
        for commands, guild_id in scopes:
            for command in commands:
                if command["name"] == name and command.get("type", 1) == kind:
                    return command, guild_id
        synced = sorted({c["name"] for commands, _ in scopes for c in commands if c.get("type", 1) == kind})
        raise LookupError(
            f"command {name!r} (type {kind}) was not synced (PUT …/commands calls: {self.commands['sync_count']}); "
            f"synced: {synced}"
        )

    def _check_visible(self, command: Json, user: Member, channel_id: int) -> None:
        """Discord hides commands the member lacks permissions for, and age-restricted ones outside NSFW channels."""
        required = command.get("default_member_permissions")
        granted = self.guild.permissions_of(user)
        if required is not None and not granted & ADMINISTRATOR and granted & int(required) != int(required):
            raise PermissionError(f"{user.name} cannot see /{command['name']} (needs permissions {required})")
        if command.get("nsfw") and not self.channel(channel_id).nsfw:
            raise PermissionError(f"/{command['name']} is age-restricted and cannot run outside an NSFW channel")

    @staticmethod
    def _command_data(command: Json, guild_id: int | None, options: list[Json], resolved: Json) -> Json:
        data: Json = {"id": command["id"], "name": command["name"], "type": 1, "options": options}
        if resolved:
            data["resolved"] = resolved
        if guild_id is not None:
            # Without it discord.py looks only among global commands.
            data["guild_id"] = str(guild_id)
        return data

    def _options(
        self,
        command: Json,
        values: dict[str, object],
        uploads: dict[str, Upload],
        channel_id: int,
        subcommand: str | None,
        group: str | None,
        *,
        focused: str | None,
        unchecked: bool,
    ) -> tuple[list[Json], Json]:
        """The `data.options` tree and `data.resolved` for the given values, typed by the synced definition."""
        definitions: list[Json] = command.get("options") or []
        path: list[tuple[int, str]] = []
        for kind, wanted in ((SUB_COMMAND_GROUP, group), (SUB_COMMAND, subcommand)):
            if wanted is None:
                continue
            parent = next((d for d in definitions if d.get("type") == kind and d["name"] == wanted), None)
            if parent is None:
                raise LookupError(f"/{command['name']} has no {'group' if kind == 2 else 'subcommand'} {wanted!r}")
            path.append((kind, wanted))
            definitions = parent.get("options") or []
        if any(d.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP) for d in definitions):
            names = [d["name"] for d in definitions]
            raise LookupError(f"/{command['name']} needs subcommand= (and maybe group=); choices: {names}")
        by_name = {d["name"]: d for d in definitions}
        for name in [*values, *uploads]:
            if name not in by_name:
                raise LookupError(f"/{command['name']} has no option {name!r}; options: {list(by_name)}")
        resolved: dict[str, dict[str, Json]] = {}
        leaf: list[Json] = []
        for definition in definitions:
            name = definition["name"]
            if name in uploads:
                leaf.append(self._attachment_option(definition, uploads[name], channel_id, resolved))
            elif name in values:
                leaf.append(
                    self._option(definition, values[name], resolved, focused=name == focused, unchecked=unchecked)
                )
            elif definition.get("required") and focused is None and not unchecked:
                raise ValueError(f"/{command['name']}: required option {name!r} is missing")
        for kind, wanted in reversed(path):
            leaf = [{"type": kind, "name": wanted, "options": leaf}]
        return leaf, {key: value for key, value in resolved.items() if value}

    def _attachment_option(
        self, definition: Json, upload: Upload, channel_id: int, resolved: dict[str, dict[str, Json]]
    ) -> Json:
        if definition.get("type") != ATTACHMENT:
            raise TypeError(f"option {definition['name']!r} is not an attachment option")
        filename, data, content_type = upload
        stored = self.store_attachment(channel_id, filename, data, content_type, ephemeral=True)
        # The value is the same string snowflake as the resolved key, or discord.py hands over a bare Object.
        resolved.setdefault("attachments", {})[str(stored.id)] = stored.to_payload()
        return {"name": definition["name"], "type": ATTACHMENT, "value": str(stored.id)}

    def _option(
        self, definition: Json, value: object, resolved: dict[str, dict[str, Json]], *, focused: bool, unchecked: bool
    ) -> Json:
        name, kind = definition["name"], definition.get("type")
        option: Json = {"name": name, "type": kind}
        if focused:
            return option | {"value": str(value), "focused": True}
        if unchecked and kind in (STRING, INTEGER, NUMBER, BOOLEAN):
            return option | {"value": value}
        if kind == STRING:
            if not isinstance(value, str):
                raise TypeError(f"option {name!r} takes a str, not {value!r}")
            if not definition.get("min_length", 0) <= len(value) <= definition.get("max_length", 6000):
                raise ValueError(f"option {name!r}: length {len(value)} outside the allowed range")
        elif kind in (INTEGER, NUMBER):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (kind == INTEGER and isinstance(value, float))
            ):
                raise TypeError(f"option {name!r} takes a {'int' if kind == INTEGER else 'number'}, not {value!r}")
            low, high = definition.get("min_value"), definition.get("max_value")
            if (low is not None and value < low) or (high is not None and value > high):
                raise ValueError(f"option {name!r}: {value} outside [{low}, {high}]")
        elif kind == BOOLEAN:
            if not isinstance(value, bool):
                raise TypeError(f"option {name!r} takes a bool, not {value!r}")
        elif kind in (USER, CHANNEL, ROLE, MENTIONABLE):
            return option | {"value": self._resolve(name, kind, value, resolved)}
        elif kind == ATTACHMENT:
            raise TypeError(f"pass attachment option {name!r} through attachments=")
        choices = definition.get("choices")
        if choices and value not in [choice["value"] for choice in choices]:
            raise ValueError(f"option {name!r}: {value!r} is not one of the choices {choices}")
        return option | {"value": value}

    def _resolve(self, name: str, kind: int, value: object, resolved: dict[str, dict[str, Json]]) -> str:
        target = value.id if isinstance(value, Member) else value
        if not isinstance(target, int):
            raise TypeError(f"option {name!r} takes a Member or an id, not {value!r}")
        key = str(target)
        member = self.guild.members.get(target)
        if member is not None and kind in (USER, MENTIONABLE):
            resolved.setdefault("users", {})[key] = member.user_payload()
            resolved.setdefault("members", {})[key] = self.guild.member_payload(
                member, with_user=False, with_permissions=True
            )
        elif target in self.guild.roles and kind in (ROLE, MENTIONABLE):
            resolved.setdefault("roles", {})[key] = self.guild.roles[target].to_payload()
        elif target in self.guild.channels and kind == CHANNEL:
            channel = self.guild.channels[target]
            resolved.setdefault("channels", {})[key] = {
                "id": key,
                "name": channel.name,
                "type": 0,
                "nsfw": channel.nsfw,
                "parent_id": None,
                "permissions": str(self.guild.permissions_of(self.bot)),
            }
        else:
            raise LookupError(f"option {name!r}: nothing with id {target} of the right kind in the guild")
        return key
