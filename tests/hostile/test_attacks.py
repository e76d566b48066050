"""Every attack of :mod:`bench.attacks` against a node T, while its good peers G1 and
G2 ping each other through it, as ``python -m bench.hostile`` runs them (shorter).

For each: no more than 1% of the pings lost, no good peering dropped (G1, G2,
and a quiet peer that only ever hears T's keepalives), the attacker closed when
it must be (bad signatures, bad handshakes, a peer that takes nothing) and
kept when it sends only genuine frames, and T's memory grown by less than
20 MiB.  The processes are real, on loopback; T cuts handshakes after 2 s so
that the slow ones show within the attack.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench.attacks import NAMES
from bench.hostile import EXPECT_CLOSED, MIN_SECONDS, Row, measure, triangle
from router.routing.constants import PEER_TIMEOUT_S

ATTACK_S = 5.0
RSS_GROWTH_MB = 20.0
CLOSED_WITHIN_S = {"slowloris": 2.0 + 1.5, "never-reads": 12.0}
"""How soon T must close the attacker (forged frames and bad handshakes: at once)."""


def checks(attack: str, row: Row, t_status: dict[str, Any], gateway: dict[str, Any], t_log: str) -> None:
    """What each attack must leave behind, beyond the common checks."""
    if attack == "valid-bootstraps":
        assert t_status["drops"].get("over budget: bootstrap", 0) > 0, t_status["drops"]
    if attack == "deep-announcements":
        assert t_status["drops"].get("over budget: announcement", 0) > 0, t_status["drops"]
    if attack.startswith("forged-"):
        assert t_status["counters"]["peers held off: bad signature"] == 1
        assert row.refused > 0, "the attacker never came back"
        assert t_status["counters"]["handshakes refused: address held off"] >= row.refused
        events = [json.loads(line) for line in t_log.splitlines() if line.startswith("{")]
        held = [e for e in events if e["event"] == "peer held off after a bad signature"]
        assert len(held) == 1 and held[0]["address"] == "127.0.1.1" and held[0]["seconds"] == 30.0, held
    if attack == "path-notices":
        drops = t_status["drops"].items()
        lies = sum(v for k, v in drops if k.startswith(("path notice:", "over budget: path")))
        assert lies > 0 and "path repairs" not in t_status["routing"], t_status
    if attack == "path-confirmations":
        # (The good peers' own confirmations pass through T as they should:
        # only the lies are counted as drops.)
        drops = t_status["drops"]
        lies = sum(
            v
            for k, v in drops.items()
            if k.startswith(("path confirmation:", "path moved:", "over budget: path"))
        )
        assert lies > 0, drops
    if attack == "lookahead-claims":
        drops = t_status["drops"]
        assert drops.get("lookahead claim for another root", 0) > 0, drops
        assert drops.get("over budget: lookahead claim", 0) > 0, drops
    if attack == "never-reads":
        assert row.refused == 0, "the peer feeding the stalled one was closed"
    if attack == "silent-connections":
        assert t_status["counters"]["handshakes refused: too many pending from one network"] >= 300 - 16
    if attack in ("gateway-idle", "admin-idle"):
        assert row.probes > 0 and row.probes_served == row.probes, row
    if attack == "gateway-idle":
        assert gateway["proxy_counters"].get("refused: too many clients", 0) == 0, gateway


@pytest.mark.parametrize("attack", [*NAMES, "combined"])
def test_an_attack_leaves_the_good_peers_untouched(attack: str) -> None:
    with triangle(["--handshake-timeout=2"]) as tri:
        row = measure(tri, attack, max(ATTACK_S, MIN_SECONDS.get(attack, 0.0)))
        t = tri["t"]
        status, gateway = t.api("GET", "/status"), t.api("GET", "/gateway")
        t_log = (t.data_dir / "log").read_text()
        for name in ("g1", "g2"):
            assert tri[name].api("GET", "/status")["peers"] == 1, tri.net.log(tri[name])
    print(row)
    assert row.pings >= 40 and row.ping_loss <= 0.01, row
    assert row.good_peerings_dropped == 0, row
    assert row.max_silence_s < PEER_TIMEOUT_S, f"a quiet good peer heard nothing for {row.max_silence_s} s"
    assert row.rss_growth_mb < RSS_GROWTH_MB, row
    if row.unit:
        assert row.rate > 0, row
    expected = EXPECT_CLOSED.get(attack)
    if expected:
        assert row.closed_after_s is not None, f"{attack}: attacker not closed"
        assert row.closed_after_s < CLOSED_WITHIN_S.get(attack, 1.0), row
    elif expected is False:
        assert row.closed_after_s is None, f"{attack}: a peer sending genuine frames was closed"
    checks(attack, row, status, gateway, t_log)
