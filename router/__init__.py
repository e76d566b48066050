"""Pinewood's router: the Pinecone-compatible overlay routing layer."""

__version__ = "0.1.0"
