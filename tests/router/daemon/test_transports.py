"""Dialling and listening by URI: what happens when the QUIC engine cannot be had."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import cast

import pytest

from router.daemon.transports import Transports
from router.links.owner import LinkOwner
from router.links.uri import parse_peer_uri
from router.quic.errors import QuicEngineError
from router.wire.keys import Identity


def transports(tmp_path: Path, engine: str) -> Transports:
    # Nothing is dialled or accepted: the engine is refused first, so no owner is used.
    return Transports(cast(LinkOwner, object()), Identity.generate(), tmp_path, 10.0, Counter(), engine)


def test_a_quic_dial_without_its_engine_fails_as_a_dial_with_the_reason(tmp_path: Path) -> None:
    """A static peer's dial loop records an OSError's reason and retries; an
    engine that cannot be had is such a failure, not an unexpected error."""

    async def main() -> None:
        with pytest.raises(ConnectionError, match="unknown QUIC engine 'quiche'"):
            await transports(tmp_path, "quiche").dial(parse_peer_uri("quic://127.0.0.1:9"))

    asyncio.run(main())


def test_a_quic_listener_without_its_engine_fails_naming_the_engine(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(QuicEngineError, match="unknown QUIC engine 'quiche'"):
            await transports(tmp_path, "quiche").listen(parse_peer_uri("quic://127.0.0.1:0"))

    asyncio.run(main())


def test_the_engine_is_looked_up_only_when_quic_is_used(tmp_path: Path) -> None:
    chosen = transports(tmp_path, "quiche")
    assert chosen._quic_engine is None  # made without looking, so a node without quic:// starts
