"""The per-peer budget of signature checks, alone and in the core."""

from __future__ import annotations

from router.budget import TokenBucket
from router.core import CoreConfig, RouterCore
from router.outputs import ClosePeer
from router.wire import BootstrapFrame, Watermark, encode_frame, sign_bootstrap
from tests.router.test_core import LOW, MID, T0


def test_a_budget_refills_at_its_rate_up_to_its_burst() -> None:
    budget = TokenBucket(rate=10.0, burst=3.0, now=0.0)
    assert [budget.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert budget.take(0.1) and not budget.take(0.1)  # one token back in 0.1 s
    assert [budget.take(100.0) for _ in range(4)] == [True, True, True, False]  # never past the burst
    assert budget.take(99.0) is False  # time going backwards gives nothing back


def test_bootstraps_past_the_budget_are_dropped_unverified_and_the_peer_kept() -> None:
    core = RouterCore(MID, T0, CoreConfig(signature_checks_per_s=5.0, signature_checks_burst=10.0))
    port, _ = core.add_peer(LOW.public_key, 3, T0)

    def bootstrap(sequence: int) -> bytes:
        body = sign_bootstrap(LOW, sequence, *core.root())
        return encode_frame(BootstrapFrame(LOW.public_key, Watermark(LOW.public_key, 0), body.encode()))

    outputs = [core.handle_frame(port, bootstrap(100 + n), T0) for n in range(25)]
    assert not any(isinstance(o, ClosePeer) for out in outputs for o in out)
    assert core.drops["over budget: bootstrap"] == 15
    assert core.routes[LOW.public_key].sequence == 109  # the tenth, the last within the burst
    # A second later five more checks are affordable.
    for n in range(6):
        core.handle_frame(port, bootstrap(200 + n), T0 + 1.0)
    assert core.drops["over budget: bootstrap"] == 16
    assert core.routes[LOW.public_key].sequence == 204
