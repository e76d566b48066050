"""A link that goes silent under traffic ends its peering by the kernel's
retransmissions, not by the keepalive deadline.

Two real nodes in network namespaces, one emulated link of 5 ms each way.
The link then drops every frame both ways, as a radio out of range does,
while the first node keeps sending pings into it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bench.daemons import wait_until
from bench.testbed import bed as testbed
from bench.testbed.medium import LinkShape
from router.links.peer import PATH_DEAD_REASON

SHAPE = LinkShape(delay_s=0.005, rate_bps=100e6, queue_s=0.05)


def reasons(log: str) -> list[str]:
    out = []
    for line in log.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "peer disconnected":
                out.append(str(event.get("reason")))
    return out


@pytest.mark.usefixtures("namespaces_or_skip")
def test_a_silent_link_under_traffic_is_closed_as_dead(tmp_path: Path) -> None:
    bed = testbed.Testbed(
        workdir=tmp_path, kinds=[testbed.Kind.PINEWOOD] * 2, edges=[(0, 1)], shape=lambda a, b: SHAPE,
        discovery=testbed.Discovery.STATIC,
    )  # fmt: skip
    with bed:
        bed.start_all()
        wait_until(lambda: bed.peer_keys(0) and bed.peer_keys(1), 30, "the two nodes peered")
        far = bed.nodes[1].key
        wait_until(lambda: bed.ping(0, far, timeout=1.0) is not None, 30, "a ping answered")
        bed.set_up(0, 1, False)
        went_silent = time.monotonic()
        # Pings into the silent link until the first node gives the peering up.
        while bed.peer_keys(0):
            assert time.monotonic() - went_silent < 20, "the peering outlived the silent link"
            bed.ping(0, far, timeout=0.2)
        log = (bed.nodes[0].data_dir / "log").read_text()
    assert reasons(log) == [PATH_DEAD_REASON], log[-2000:]
