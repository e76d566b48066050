"""Session records put in a given state by the moves of the table alone."""

from __future__ import annotations

from collections import deque
from typing import cast

from router.quic.aioquic_connection import AdjustedConnection
from router.sessions.session import TRANSITIONS, Session, SessionState


def bare_session() -> Session:
    """A session record with no connection behind it: the table is all that moves it."""
    return Session(b"\x01" * 32, "matrix", True, cast(AdjustedConnection, None), 0.0, 10.0)


def path_to(state: SessionState) -> list[SessionState]:
    """The shortest series of moves in the table from CONNECTING to ``state``."""
    paths: dict[SessionState, list[SessionState]] = {SessionState.CONNECTING: []}
    queue = deque([SessionState.CONNECTING])
    while queue:
        here = queue.popleft()
        for start, end in sorted(TRANSITIONS, key=lambda pair: (pair[0].value, pair[1].value)):
            if start is here and end not in paths:
                paths[end] = [*paths[here], end]
                queue.append(end)
    return paths[state]


def session_in(state: SessionState) -> Session:
    session = bare_session()
    for step in path_to(state):
        session.move_to(step)
    return session
