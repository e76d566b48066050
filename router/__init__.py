"""Pinewood's node: wire codec, routing core, links, sessions, gateway, daemon."""

__version__ = "0.1.0"
