"""Fluxcord: FLUX.1 Redux and schnell image generation for Discord servers."""

__version__ = "0.1.0"
