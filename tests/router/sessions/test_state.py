"""A session's states and the table of moves between them: the table on its own,
and the endpoint driven through scripted and generated sequences, checked after
every step for a state it could not be in."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.sessions.codes import UNREACHABLE
from router.sessions.endpoint import NO_ANSWER_TO_PROBE, PROBE_TIMEOUT_S, RESET_BY_PEER, Endpoint
from router.sessions.errors import SessionError, SessionStateError
from router.sessions.events import SessionAlive, SessionDown, SessionSetAside, SessionUp
from router.sessions.session import TRANSITIONS, Limits, Session, SessionState
from tests.router.sessions.pair import Net
from tests.router.sessions.states import bare_session, session_in

S = SessionState
ALL_PAIRS = [(a, b) for a in SessionState for b in SessionState]
FORBIDDEN = [pair for pair in ALL_PAIRS if pair not in TRANSITIONS]


def name(pair: tuple[SessionState, SessionState]) -> str:
    return f"{pair[0].name}->{pair[1].name}"


ALLOWED = sorted(TRANSITIONS, key=name)


# ---------------------------------------------------------------- the table


def test_every_state_can_be_reached_and_every_session_can_close() -> None:
    assert bare_session().state is S.CONNECTING
    for state in SessionState:
        assert session_in(state).state is state
        if state not in (S.CLOSED, S.FAILED):
            assert (state, S.FAILED if state is S.CONNECTING else S.CLOSED) in TRANSITIONS


def test_closed_states_are_final() -> None:
    assert not [pair for pair in TRANSITIONS if pair[0] in (S.CLOSED, S.FAILED)]


@pytest.mark.parametrize("move", ALLOWED, ids=name)
def test_every_move_in_the_table_is_made(move: tuple[SessionState, SessionState]) -> None:
    start, end = move
    session = session_in(start)
    session.move_to(end)
    assert session.state is end


@pytest.mark.parametrize("move", FORBIDDEN, ids=name)
def test_every_move_not_in_the_table_is_refused(move: tuple[SessionState, SessionState]) -> None:
    start, end = move
    session = session_in(start)
    with pytest.raises(SessionStateError) as info:
        session.move_to(end)
    assert isinstance(info.value, SessionError)
    assert (info.value.current, info.value.target) == (start, end)
    assert session.state is start  # a refused move changes nothing


def test_the_table_holds_the_moves_the_endpoint_makes() -> None:
    """Six states, eight moves: a move added or dropped is a decision, made here too."""
    assert len(ALL_PAIRS) == 36 and len(FORBIDDEN) == 28
    assert {
        (S.CONNECTING, S.ESTABLISHED),
        (S.CONNECTING, S.FAILED),
        (S.ESTABLISHED, S.PROBING),
        (S.ESTABLISHED, S.CLOSED),
        (S.PROBING, S.ESTABLISHED),
        (S.PROBING, S.SET_ASIDE),
        (S.PROBING, S.CLOSED),
        (S.SET_ASIDE, S.CLOSED),
    } == TRANSITIONS


# (is_live, is_up, is_closed, was_established) for each state.
FACTS = {
    S.CONNECTING: (True, False, False, False),
    S.ESTABLISHED: (True, True, False, True),
    S.PROBING: (True, True, False, True),
    S.SET_ASIDE: (False, True, False, True),
    S.CLOSED: (False, False, True, True),
    S.FAILED: (False, False, True, False),
}


@pytest.mark.parametrize("state", list(SessionState), ids=lambda s: s.name)
def test_what_each_state_says_of_a_session(state: SessionState) -> None:
    session = session_in(state)
    assert (session.is_live, session.is_up, session.is_closed, session.was_established) == FACTS[state]


# ---------------------------------------------------------------- the endpoint

CONNECT_TIMEOUT_S = 3.0


class Script:
    """Two endpoints on a fake clock; node 0 acts, and every session either side
    has held is checked after each step."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.net = Net(2, limits=Limits(connect_timeout_s=CONNECT_TIMEOUT_S))
        self.first: Session | None = None
        self.held: dict[Session, Endpoint] = {}
        """The endpoint each session seen belongs to."""
        self.moves: dict[Session, list[SessionState]] = {}
        """Every state each session was moved to, in order, as ``move_to`` saw it."""
        self.streams: list[tuple[Session, int]] = []
        real = Session.move_to

        def recorded(session: Session, state: SessionState) -> None:
            real(session, state)
            self.moves.setdefault(session, []).append(state)

        monkeypatch.setattr(Session, "move_to", recorded)

    @property
    def a(self) -> Endpoint:
        return self.net.endpoints[0]

    @property
    def peer(self) -> bytes:
        return self.net.key(1)

    def connect(self) -> None:
        session = self.a.connect(self.peer, "matrix", self.net.now)
        if self.first is None:
            self.first = session

    def handshake(self) -> None:
        self.net.run(0.2)

    def open_stream(self) -> None:
        for session in list(self.a.sessions):
            if session.state is S.ESTABLISHED:  # as the runtime opens them
                self.streams.append((session, self.a.open_stream(session, self.net.now)))

    def end_streams(self) -> None:
        for session, stream_id in self.streams:
            self.a.stream_done(session, stream_id)
        self.streams.clear()

    def probe(self) -> None:
        for session in list(self.a.sessions):
            self.a.probe(session, self.net.now)

    def probe_timeout(self) -> None:
        self.net.run(PROBE_TIMEOUT_S + 0.1)

    def wait(self) -> None:
        self.net.run(CONNECT_TIMEOUT_S + 0.5)

    def offline(self) -> None:
        self.net.offline.add(self.peer)

    def online(self) -> None:
        self.net.offline.discard(self.peer)

    def close(self) -> None:
        for session in list(self.a.sessions):
            self.a.close(session, "closed by the script", self.net.now)

    def peer_closes(self) -> None:
        self.net.endpoints[1].close_all(self.net.now)

    def peer_restarts(self) -> None:
        """Node 1 forgets its sessions; it answers their packets with stateless resets."""
        fresh = Endpoint(self.net.ids[1], self.net.endpoints[1].alpns)
        self.net.endpoints[1] = fresh
        self.net.by_key[self.peer] = fresh

    def do(self, action: str) -> None:
        ACTIONS[action](self)
        self.check()

    def check(self) -> None:
        """Nothing a session shows contradicts its state, and its state is the
        last the table moved it to."""
        net, inf = self.net, float("inf")
        for n, endpoint in enumerate(net.endpoints):
            for session in endpoint.sessions:
                self.held.setdefault(session, endpoint)
            for event in net.events[n]:
                self.held.setdefault(event.session, endpoint)
        for session in self.held.keys() | self.moves.keys():
            state = session.state
            moves = self.moves.get(session, [])
            assert state is (moves[-1] if moves else S.CONNECTING), "moved outside the table"
            assert (state is S.PROBING) == (session.probe_deadline != inf)
            holder = self.held.get(session)
            if holder in net.endpoints:  # (a restarted node's old endpoint no longer runs)
                if state is S.CONNECTING:
                    assert net.now < session.connect_deadline, "connecting past its deadline"
                if state is S.PROBING:
                    assert net.now < session.probe_deadline, "probed past its deadline"
            if session.is_closed:
                assert session.close_reason and session.next_ping_at == inf
            else:
                assert not session.close_reason
                assert holder is not None and session in holder.sessions, "forgotten while open"
            if state in (S.CONNECTING, S.FAILED):
                assert not session.streams, "streams on a session that never came up"
        for n, endpoint in enumerate(net.endpoints):
            found = endpoint.find(net.key(1 - n), "matrix")
            assert found is None or found.is_live
            downs = [id(e.session) for e in net.events[n] if isinstance(e, SessionDown)]
            assert len(downs) == len(set(downs)), "a session closed twice"
            for event in net.events[n]:
                if isinstance(event, SessionDown):
                    assert event.session.is_closed
                elif isinstance(event, (SessionUp, SessionAlive)):
                    assert event.session.was_established
                elif isinstance(event, SessionSetAside):
                    assert event.session.state in (S.SET_ASIDE, S.CLOSED)

    def path(self) -> list[SessionState]:
        """The states the first session node 0 opened went through."""
        assert self.first is not None
        return [S.CONNECTING, *self.moves.get(self.first, [])]


ACTIONS: dict[str, Callable[[Script], None]] = {
    "connect": Script.connect,
    "handshake": Script.handshake,
    "open stream": Script.open_stream,
    "end streams": Script.end_streams,
    "probe": Script.probe,
    "probe timeout": Script.probe_timeout,
    "wait": Script.wait,
    "offline": Script.offline,
    "online": Script.online,
    "close": Script.close,
    "peer closes": Script.peer_closes,
    "peer restarts": Script.peer_restarts,
}

C, E, P, A, X, F = S.CONNECTING, S.ESTABLISHED, S.PROBING, S.SET_ASIDE, S.CLOSED, S.FAILED

# (steps, the states the first session goes through, the reason it closed with).
SCRIPTS: dict[str, tuple[list[str], list[SessionState], str | None]] = {
    "comes up": (["connect", "handshake"], [C, E], None),
    "unreachable": (["offline", "connect", "wait"], [C, F], UNREACHABLE),
    "closed while connecting": (["connect", "close"], [C, F], "closed by the script"),
    "closed when up": (["connect", "handshake", "close"], [C, E, X], "closed by the script"),
    "answers its probe": (["connect", "handshake", "probe", "handshake"], [C, E, P, E], None),
    "answers and is probed again": (
        ["connect", "handshake", "probe", "handshake", "probe", "handshake"],
        [C, E, P, E, P, E],
        None,
    ),
    "misses its probe": (
        ["connect", "handshake", "offline", "probe", "probe timeout"],
        [C, E, P, X],
        NO_ANSWER_TO_PROBE,
    ),
    "closed while probed": (
        ["connect", "handshake", "offline", "probe", "close"],
        [C, E, P, X],
        "closed by the script",
    ),
    "misses its probe with a stream open": (
        ["connect", "handshake", "open stream", "offline", "probe", "probe timeout"],
        [C, E, P, A],
        None,
    ),
    "set aside, then closed": (
        ["connect", "handshake", "open stream", "offline", "probe", "probe timeout", "online", "close"],
        [C, E, P, A, X],
        "closed by the script",
    ),
    "set aside, then closed by the other side": (
        [
            "connect",
            "handshake",
            "open stream",
            "offline",
            "probe",
            "probe timeout",
            "online",
            "peer closes",
            "handshake",
        ],
        [C, E, P, A, X],
        "node stopping",
    ),
    "set aside, and not probed again": (
        ["connect", "handshake", "open stream", "offline", "probe", "probe timeout", "online", "probe"],
        [C, E, P, A],
        None,
    ),
    "reset by the other side": (
        ["connect", "handshake", "peer restarts", "probe", "handshake"],
        [C, E, P, X],
        RESET_BY_PEER,
    ),
    "closed by the other side": (
        ["connect", "handshake", "peer closes", "handshake"],
        [C, E, X],
        "node stopping",
    ),
    "probing a connecting session does nothing": (["connect", "probe", "handshake"], [C, E], None),
}


@pytest.mark.parametrize("script", SCRIPTS, ids=str)
def test_scripted_sessions_go_through_the_states_expected(
    script: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps, expected, reason = SCRIPTS[script]
    run = Script(monkeypatch)
    for step in steps:
        run.do(step)
    assert run.path() == expected
    assert run.first is not None
    assert run.first.close_reason == (reason or "")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(sorted(ACTIONS)), max_size=16))
def test_no_sequence_leaves_a_session_in_an_impossible_state(steps: list[str]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        run = Script(monkeypatch)
        for step in ["connect", *steps]:
            run.do(step)


def test_the_checks_catch_a_state_set_outside_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness above fails on a session whose state moved by any way but the table."""
    run = Script(monkeypatch)
    run.do("connect")
    run.do("handshake")
    assert run.first is not None
    run.first._state = S.SET_ASIDE  # as no code outside the table may
    with pytest.raises(AssertionError, match="moved outside the table"):
        run.check()


def scripted_states() -> Iterator[SessionState]:
    for _, expected, _ in SCRIPTS.values():
        yield from expected


def test_the_scripts_reach_every_state_and_make_every_move() -> None:
    assert set(scripted_states()) == set(SessionState)
    made = {move for _, expected, _ in SCRIPTS.values() for move in pairwise(expected)}
    assert made == TRANSITIONS


def test_stray_bytes_do_not_move_a_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Garbage under a live session's connection ID changes nothing."""
    run = Script(monkeypatch)
    run.do("connect")
    run.do("handshake")
    assert run.first is not None
    for _ in range(5):
        stray = bytes([0x41]) + run.first.connection.host_cid + os.urandom(60)
        run.a.datagram_received(run.peer, stray, run.net.now)
        run.check()
    assert run.path() == [C, E]
