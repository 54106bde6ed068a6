"""Local stand-ins for the image providers and for Discord, over real HTTP; they import nothing from `bot`."""
