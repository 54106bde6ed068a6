"""A local Discord (REST, gateway and CDN) that the real discord.py client runs against."""

from emulators.discord.emulator import DiscordEmulator

__all__ = ["DiscordEmulator"]
