"""Dispatch of ``python -m bench`` and ``pinewood bench``: ``report``, ``sim``, ``startup`` or ``idle``."""

from __future__ import annotations

from collections.abc import Sequence

from bench.idle import main as idle_main
from bench.report import main as report_main
from bench.sim.cli import main as sim_main
from bench.startup import main as startup_main

COMMANDS = ("report", "sim", "startup", "idle")


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m bench {" + ",".join(COMMANDS) + "} [options]  (--help after a command)")
        return 2
    if argv[0] == "report":
        return report_main(argv[1:])
    if argv[0] == "startup":
        return startup_main(argv[1:])
    if argv[0] == "idle":
        return idle_main(argv[1:])
    return sim_main(argv[1:])
