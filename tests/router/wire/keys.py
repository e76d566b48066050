"""Fixed identities for tests: the same seeds as the reference vectors (0x01.., 0x02.., ...)."""

from __future__ import annotations

from router.wire import Identity


def identity(n: int) -> Identity:
    """The identity whose seed is 32 bytes of ``n``."""
    return Identity.from_seed(bytes([n]) * 32)


K1, K2, K3, K4 = (identity(n) for n in (1, 2, 3, 4))
