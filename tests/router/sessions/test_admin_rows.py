"""What the admin API's /sessions rows say of a session in each state.

"established" stays true once a session came up, closed or not; "closing" is
true once it closed: both are part of the operator's API and read as they did
before sessions had one state.  "state" names the state."""

from __future__ import annotations

import pytest

from router.daemon.admin.views import _session_rows
from router.sessions.session import SessionState
from tests.router.sessions.states import session_in

S = SessionState

ROWS = {
    S.CONNECTING: ("connecting", False, False),
    S.ESTABLISHED: ("established", True, False),
    S.PROBING: ("probing", True, False),
    S.SET_ASIDE: ("set_aside", True, False),
    S.CLOSED: ("closed", True, True),
    S.FAILED: ("failed", False, True),
}


@pytest.mark.parametrize("state", list(SessionState), ids=lambda s: s.name)
def test_the_admin_api_shows_each_state(state: SessionState) -> None:
    [row] = _session_rows([session_in(state)], now=1.0)
    assert (row["state"], row["established"], row["closing"]) == ROWS[state]
