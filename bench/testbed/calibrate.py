"""The link emulator measured: does a link delay and lose what it was told to,
and how many frames a second does the emulator carry before it bends?

Two namespaces and one emulated link, no nodes.  A sender in the first sends
numbered UDP datagrams stamped with the host's monotonic clock; a receiver in
the second notes when each arrives.  Both are threads of this process, so the
one-way delay is read on one clock: what it shows beyond the configured delay
is the emulator's error plus the two sockets' own path through the kernel
(measured alone on a link with no delay).
"""

from __future__ import annotations

import math
import struct
import threading
import time
from pathlib import Path
from typing import Any

from bench.testbed import netns
from bench.testbed.bed import Kind, Testbed, address_of
from bench.testbed.medium import LinkShape
from bench.testbed.probes import quantiles

PORT = 9000
STAMP = struct.Struct("!Id")
SHAPES = (
    ("no delay", LinkShape()),
    ("1 ms", LinkShape(delay_s=0.001)),
    ("25 ms, 1% loss", LinkShape(delay_s=0.025, loss=0.01)),
    ("150 ms, 2% loss", LinkShape(delay_s=0.150, loss=0.02)),
    ("50 ms, 10 ms jitter", LinkShape(delay_s=0.050, jitter_s=0.010)),
)
ACCURACY_COUNT = 4000
ACCURACY_EVERY_S = 0.001
LOAD_RATES = (2_000, 5_000, 10_000, 20_000, 40_000)
LOAD_SECONDS = 1.0


def _one_way(bed: Testbed, count: int, every_s: float, size: int = 64) -> tuple[int, list[float]]:
    """Send ``count`` datagrams, one every ``every_s``; (sent, one-way delays of those received)."""
    receiver = netns.udp_in(bed.nodes[1].namespace)
    sender = netns.udp_in(bed.nodes[0].namespace)
    receiver.bind((address_of(1), PORT))
    receiver.settimeout(0.5)
    delays: list[float] = []
    done = threading.Event()

    def receive() -> None:
        while True:
            try:
                data = receiver.recv(2048)
            except TimeoutError:
                if done.is_set():
                    return
                continue
            delays.append(time.monotonic() - STAMP.unpack_from(data)[1])

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    padding = bytes(max(0, size - STAMP.size))
    sent = 0
    next_at = time.monotonic()
    try:
        for seq in range(count):
            sender.sendto(STAMP.pack(seq, time.monotonic()) + padding, (address_of(1), PORT))
            sent += 1
            next_at += every_s
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        time.sleep(0.5)  # the slowest link's datagrams still in flight
    finally:
        done.set()
        thread.join()
        sender.close()
        receiver.close()
    return sent, delays


def _wilson(hits: int, total: int) -> tuple[float, float]:
    """A 95% interval for a proportion."""
    if total == 0:
        return (0.0, 1.0)
    z = 1.96
    p = hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def calibrate(workdir: Path) -> dict[str, Any]:
    bed = Testbed(workdir, [Kind.PINEWOOD, Kind.PINEWOOD], [(0, 1)], lambda a, b: LinkShape(), seed=0)
    rows = []
    with bed:
        # ARP first, so that no datagram waits for the neighbour's address.
        _one_way(bed, 5, 0.01)
        for name, shape in SHAPES:
            bed.set_link(0, 1, shape)
            bed.emulator_call({"op": "reset_late"})
            sent, delays = _one_way(bed, ACCURACY_COUNT, ACCURACY_EVERY_S)
            late = bed.link_stats()
            lost = sent - len(delays)
            low, high = _wilson(lost, sent)
            excess = [(d - shape.delay_s) * 1e3 for d in delays]
            rows.append(
                {
                    "link": name,
                    "shape": shape.as_dict(),
                    "sent": sent,
                    "loss": lost / sent,
                    "loss_95": [low, high],
                    "delay_ms": {k: v * 1e3 for k, v in quantiles(delays).items()},
                    "excess_ms": quantiles(excess),
                    "emulator_late_ms_mean": late["late_ms_mean"],
                    "emulator_late_ms_max": late["late_ms_max"],
                }
            )
        load = []
        bed.set_link(0, 1, LinkShape(delay_s=0.001))
        for rate in LOAD_RATES:
            cpu0 = bed.link_stats()["cpu_s"]
            bed.emulator_call({"op": "reset_late"})
            count = int(rate * LOAD_SECONDS)
            started = time.monotonic()
            sent, delays = _one_way(bed, count, 1.0 / rate)
            took = time.monotonic() - started - 0.5
            stats = bed.link_stats()
            load.append(
                {
                    "offered_pps": rate,
                    "sent_pps": round(sent / took),
                    "delivered": len(delays) / sent,
                    "delay_ms": {k: v * 1e3 for k, v in quantiles(delays).items()},
                    "emulator_late_ms_mean": stats["late_ms_mean"],
                    "emulator_cpu_share": round((stats["cpu_s"] - cpu0) / took, 3),
                }
            )
        scheduling = bed.link_stats()["scheduling"]
    return {"scheduling": scheduling, "accuracy": rows, "load": load}
