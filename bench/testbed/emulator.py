"""The link emulator: one process that holds every node's TAP device and moves
frames between them as :class:`~bench.testbed.medium.Medium` says.

This kernel has no netem, so delay, jitter and loss come from user space.  The
process creates one TAP device per node (the testbed then moves each into its
node's network namespace; the open file keeps working there), reads what the
nodes send, and writes each frame to its receivers' devices when it is due, from
a heap of deliveries.  It waits in ``select``, whose timeout has microsecond
resolution (``epoll``'s has milliseconds, which alone would add up to 1 ms to
every frame).

Control is JSON lines: one command a line on standard input, one answer a line
on standard output.  Commands: ``link`` (``a``, ``b``, ``shape`` or null,
``both_ways``), ``up`` (``a``, ``b``, ``up``), ``stats``, ``quit``.  End of
input ends the process, so a testbed killed outright takes its emulator (and
with it every TAP device, which is not persistent) down too.

Run as ``python -m bench.testbed.emulator --nodes N --prefix NAME --seed S``;
it prints ``{"ready": [device names]}`` once the devices exist.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import heapq
import json
import os
import random
import select
import signal
import struct
import sys
import time
from typing import Any

from bench.testbed.medium import LinkShape, Medium

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
READS_PER_WAKE = 64
"""Frames read from one device before the others get a turn."""
MAX_FRAME = 65536
PR_SET_TIMERSLACK = 29
REALTIME_PRIORITY = 10


def open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def realtime() -> str:
    """Run ahead of the nodes: the emulator is the wire, and a frame's delay must
    not grow because the nodes keep both cores busy.  A real-time priority
    (SCHED_FIFO, throttled by the kernel to 95% of a core) where allowed, else
    the best nice value; timer slack at 1 ns so that ``select`` wakes on time.
    Which one it got is reported in the statistics."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
        return "fifo"
    except (OSError, AttributeError):
        pass
    with contextlib.suppress(OSError):
        os.nice(-20)
        return "nice"
    return "normal"


class Emulator:
    def __init__(self, medium: Medium, fds: list[int], rng: random.Random) -> None:
        self.medium = medium
        self.fds = fds
        self.port_of = {fd: port for port, fd in enumerate(fds)}
        self.rng = rng
        self.heap: list[tuple[float, int, int, bytes]] = []
        self.sequence = 0
        self.write_errors = 0
        self.late_s_max = 0.0
        self.late_s_sum = 0.0
        self.written = 0
        self.started = time.monotonic()
        self.scheduling = "normal"

    def read_ready(self, fd: int, now: float) -> None:
        src = self.port_of[fd]
        for _ in range(READS_PER_WAKE):
            try:
                frame = os.read(fd, MAX_FRAME)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EIO):  # EIO: the device is not up yet
                    return
                raise
            for delivery in self.medium.accept(src, frame, now, self.rng):
                self.sequence += 1
                heapq.heappush(self.heap, (delivery.at, self.sequence, delivery.port, delivery.frame))

    def write_due(self, now: float) -> None:
        heap = self.heap
        while heap and heap[0][0] <= now:
            due, _, port, frame = heapq.heappop(heap)
            late = now - due
            self.late_s_sum += late
            self.late_s_max = max(self.late_s_max, late)
            self.written += 1
            try:
                os.write(self.fds[port], frame)
            except OSError:
                self.write_errors += 1  # the device is down or its queue is full: lost, counted

    def stats(self) -> dict[str, Any]:
        m = self.medium
        cpu = os.times()
        return {
            "sent_frames": m.sent_frames,
            "sent_bytes": m.sent_bytes,
            "received_frames": m.received_frames,
            "received_bytes": m.received_bytes,
            "drops": dict(m.drops),
            "write_errors": self.write_errors,
            "in_flight": len(self.heap),
            "written": self.written,
            "late_ms_mean": self.late_s_sum / self.written * 1e3 if self.written else 0.0,
            "late_ms_max": self.late_s_max * 1e3,
            "cpu_s": cpu.user + cpu.system,
            "uptime_s": time.monotonic() - self.started,
            "scheduling": self.scheduling,
        }

    def command(self, line: str) -> dict[str, Any] | None:
        try:
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "link":
                shape = None if cmd.get("shape") is None else LinkShape.from_dict(cmd["shape"])
                self.medium.set_link(int(cmd["a"]), int(cmd["b"]), shape, bool(cmd.get("both_ways", True)))
            elif op == "up":
                self.medium.set_up(int(cmd["a"]), int(cmd["b"]), bool(cmd["up"]))
            elif op == "stats":
                return self.stats()
            elif op == "reset_late":
                self.late_s_sum = self.late_s_max = 0.0
                self.written = 0
            elif op == "quit":
                return None
            else:
                return {"error": f"unknown op {op!r}"}
        except (ValueError, KeyError, TypeError) as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
        return {"ok": True}

    def run(self, control: int) -> None:
        buffered = b""
        watched = [control, *self.fds]
        while True:
            now = time.monotonic()
            self.write_due(now)
            timeout = max(0.0, self.heap[0][0] - time.monotonic()) if self.heap else 1.0
            ready, _, _ = select.select(watched, [], [], timeout)
            now = time.monotonic()
            for fd in ready:
                if fd != control:
                    self.read_ready(fd, now)
                    continue
                chunk = os.read(control, 65536)
                if not chunk:
                    return
                buffered += chunk
                while b"\n" in buffered:
                    line, buffered = buffered.split(b"\n", 1)
                    answer = self.command(line.decode(errors="replace"))
                    if answer is None:
                        return
                    sys.stdout.write(json.dumps(answer) + "\n")
                    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.testbed.emulator")
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--prefix", required=True, help="device names: PREFIX0, PREFIX1, ...")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the testbed ends us by closing our input
    scheduling = realtime()
    names = [f"{args.prefix}{i}" for i in range(args.nodes)]
    fds = [open_tap(name) for name in names]
    emulator = Emulator(Medium(args.nodes), fds, random.Random(args.seed))
    emulator.scheduling = scheduling
    sys.stdout.write(json.dumps({"ready": names}) + "\n")
    sys.stdout.flush()
    emulator.run(sys.stdin.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
