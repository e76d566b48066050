"""When to dial a static peer next: the redial schedule, sans-I/O.

The reference's connection manager retries a peer after 5 s, doubling the wait
up to an hour (:data:`RECONNECT_MIN_S`, :data:`RECONNECT_MAX_S`), and starts
over at 5 s once a dial succeeds.  Alone, that makes a restarted neighbour
wait up to 5 s for its peerings to come back, and with them every route and
session through it (a QUIC Initial lost meanwhile is retried only on QUIC's
own doubling timer).  So an unexpected loss of an established peering opens
a *prompt window* of :data:`PROMPT_WINDOW_S`:

* the first redial comes after a delay drawn uniformly from
  [:data:`FIRST_REDIAL_MIN_S`, :data:`FIRST_REDIAL_MAX_S`], so that the
  thousand peers of a node that restarts do not all dial it in the same
  instant (and the node itself has had a moment to go or to come back);
* each further retry inside the window comes after a delay drawn from
  [:data:`RETRY_MIN_S`, :data:`RETRY_MAX_S`], so that a peer that is back is
  peered with again within a second of its answering;
* once the window is over, the reference's schedule: 5 s, doubling to 1 h.

A peer just configured (the node starting, or the operator adding it) opens a
*start window* of :data:`START_WINDOW_S` with the same prompt retries: nodes
that start together (a LAN after a power cut, a set of containers) find each
other within a second of each being up, instead of each dial that came a moment
too early waiting 5 s.  Outside these windows, a peer never reached, and a
peering that this node closed for a fault of the peer's (a malformed frame, a
forged signature), keep the reference's schedule.  A peering that lasted less
than :data:`STEADY_PEERING_S` opens a window only if none has been opened since
the last one that lasted longer (a window still open goes on): a peer that accepts and at once drops
us gets one window of prompt retries, then the reference's pace, not several
dials a second for ever.

The schedule takes the time as ``now`` and draws its jitter from an injected
``uniform(low, high)``; the runtime (:mod:`router.daemon.static_peers`)
sleeps and dials.
"""

from __future__ import annotations

from collections.abc import Callable

RECONNECT_MIN_S = 5.0
"""The reference connection manager's first retry, and where it starts over."""
RECONNECT_MAX_S = 3600.0
"""The reference connection manager's longest wait between retries."""
PROMPT_WINDOW_S = 30.0
"""How long after an unexpected loss the peer is retried promptly."""
FIRST_REDIAL_MIN_S = 0.05
FIRST_REDIAL_MAX_S = 0.3
"""The first redial after the loss, jittered between these."""
RETRY_MIN_S = 0.35
RETRY_MAX_S = 0.65
"""Each further retry inside the window, jittered between these."""
START_WINDOW_S = 15.0
"""How long after a peer is configured it is retried promptly while not yet reached."""
STEADY_PEERING_S = 2.0
"""A peering up for at least this long opens a prompt window when it ends,
whatever came before."""

Uniform = Callable[[float, float], float]
"""A random number in [low, high] (``random.Random().uniform``)."""


class RedialSchedule:
    """One static peer's waits between dials."""

    __slots__ = ("_armed", "_backoff_s", "_first", "_uniform", "_up_since", "_window_end")

    def __init__(self, uniform: Uniform, configured_at: float | None = None) -> None:
        """``configured_at``: when the peer was configured, which opens the start
        window; None for none (the reference's schedule until a peering is lost)."""
        self._uniform = uniform
        self._backoff_s = RECONNECT_MIN_S
        self._up_since: float | None = None
        self._window_end = float("-inf") if configured_at is None else configured_at + START_WINDOW_S
        self._first = False
        self._armed = True  # no window opened since the last steady peering

    @property
    def prompt_until(self) -> float:
        """When the open prompt window ends (in the past if none is open)."""
        return self._window_end

    def up(self, now: float) -> None:
        """A dial succeeded: the peering is established."""
        self._up_since = now
        self._backoff_s = RECONNECT_MIN_S

    def down(self, now: float, fault: bool = False) -> None:
        """The established peering ended; ``fault``: this node closed it for
        something the peer sent."""
        up_since, self._up_since = self._up_since, None
        if up_since is None:
            return
        if fault:
            self._window_end = float("-inf")
        elif self._armed or now - up_since >= STEADY_PEERING_S:
            self._window_end = now + PROMPT_WINDOW_S
            self._first = True
            self._armed = False
        # Else a short peering leaves the schedule as it was: inside a window,
        # the next retry; outside, the reference's 5 s (``up`` started it over).

    def next_delay(self, now: float) -> float:
        """Seconds to wait before the next dial, the last one having failed or its
        peering ended at ``now``."""
        if now < self._window_end:
            if self._first:
                self._first = False
                return self._uniform(FIRST_REDIAL_MIN_S, FIRST_REDIAL_MAX_S)
            return self._uniform(RETRY_MIN_S, RETRY_MAX_S)
        delay = self._backoff_s
        self._backoff_s = min(self._backoff_s * 2.0, RECONNECT_MAX_S)
        return delay
