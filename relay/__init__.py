"""Pinewood's store-and-forward relay for offline nodes (not built yet)."""
