"""The report's testbed section: scenarios side by side for Pinewood, the Go
reference and mixed networks, the emulator's calibration, and federation."""

from __future__ import annotations

from typing import Any

from bench.report_text import _f, _pct, _stamp

ABOUT = """\
Real node processes, one per network namespace, on links emulated in user space
(`bench/testbed/`): this kernel has no netem, so every node's single interface is a
TAP device held by one emulator process that delays, drops and paces each frame
on a timer heap, per directed link, and delivers broadcasts to every neighbour as
a radio would. Jitter never reorders frames on a link. The emulator runs at a
real-time priority so that two busy cores do not stretch its delays. Pinewood
nodes are `pinewood run` daemons; Go nodes are the reference router
(`tests/interop/gopeer`, pinned in its go.mod); in mixed runs half of the nodes
(chosen by seed) are Go. Peers are static along the graph's edges (edge a-b: a
dials b), except in mobility, where Pinewood nodes find each other by LAN beacons
(the Go reference has LAN discovery only in its own daemon, which must not run
here). Pings are overlay pings between random pairs of live nodes, six every
0.5 s, each waiting 2 s for its answer. First answers: pairs pinged every 0.2 s
until answered. Path length: all-Pinewood only, from the nodes' forwarded-frame
counters with one ping in flight (the reference exposes no such counter).
Cost at rest: bytes each node's interface sent (the emulator's count, so Ethernet,
IP and TCP headers included) over a quiet window after the run, beside the bytes
a Pinewood node counts itself as written to its peers; CPU from /proc, RSS at the
end."""


def _ms(block: Any, key: str) -> str:
    return _f((block or {}).get(key), 1)


def _s(block: Any, key: str) -> str:
    return _f((block or {}).get(key), 2)


def _scale(runs: list[dict[str, Any]]) -> list[str]:
    out = [
        "### How many nodes this machine holds",
        "",
        "A cold start on random graphs of mean degree 3, every link 1 ms, growing sizes:",
        "",
        "| nodes | network | all up (s) | first answer p50 / p90 (s) | pings answered | RTT p50 / p99 (ms) |"
        " CPU at rest, all nodes (cores) | emulator late, mean / max (ms) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        first = run["first_answer_s"]
        probes = run["probes"]
        rest = (run.get("rest") or {}).get("by_kind") or {}
        cores = sum(c["cpu_per_s"].get("mean", 0.0) * c["nodes"] for c in rest.values())
        emulator = run["emulator"]
        out.append(
            f"| {run['nodes']} | {run['variant']} | {run['all_up_s']:.1f} |"
            f" {_s(first, 'p50')} / {_s(first, 'p90')} ({first['answered']}/{first['count']}) |"
            f" {_pct(probes['delivery'])} of {probes['pings']} |"
            f" {_ms(probes['rtt_ms'], 'p50')} / {_ms(probes['rtt_ms'], 'p99')} | {cores:.2f} |"
            f" {_f(emulator['late_ms_mean'], 3)} / {_f(emulator['late_ms_max'], 1)} |"
        )
    return [*out, ""]


def _calibration(cal: dict[str, Any]) -> list[str]:
    out = [
        "### The link emulator, measured",
        "",
        f"One link, no nodes; UDP datagrams one way, sent and received on one clock"
        f" ({cal['accuracy'][0]['sent']} per row, one every millisecond); the emulator ran with"
        f' `{cal["scheduling"]}` scheduling. "No delay" is the sockets\' own path through the kernel.',
        "",
        "| link | one-way delay p50 / p99 (ms) | over the configured delay, p50 (ms) | loss |"
        " loss, 95% interval |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in cal["accuracy"]:
        low, high = row["loss_95"]
        out.append(
            f"| {row['link']} | {_f(row['delay_ms']['p50'], 3)} / {_f(row['delay_ms']['p99'], 3)} |"
            f" {_f(row['excess_ms']['p50'], 3)} | {row['loss'] * 100:.2f} % |"
            f" {low * 100:.2f}-{high * 100:.2f} % |"
        )
    out += [
        "",
        "Load on one 1 ms link (64-byte datagrams from one Python sender thread):",
        "",
        "| offered (pps) | sent (pps) | delivered | delay p50 / p99 (ms) | emulator CPU |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in cal["load"]:
        out.append(
            f"| {row['offered_pps']:,} | {row['sent_pps']:,} | {_pct(row['delivered'])} |"
            f" {_f(row['delay_ms'].get('p50'), 3)} / {_f(row['delay_ms'].get('p99'), 3)} |"
            f" {row['emulator_cpu_share'] * 100:.0f} % |"
        )
    return [*out, ""]


def _rest(run: dict[str, Any]) -> str:
    parts = []
    for kind, cost in ((run.get("rest") or {}).get("by_kind") or {}).items():
        own = cost.get("node_bytes_per_s")
        own_text = f" ({_f(own.get('mean'), 0)} by its own count)" if own else ""
        parts.append(
            f"{kind}: {_f(cost['link_bytes_per_s'].get('mean'), 0)} B/s{own_text},"
            f" {_f(cost['cpu_per_s'].get('mean', 0) * 100, 2)} % CPU,"
            f" {_f(cost['rss_mib'].get('mean'), 0)} MiB"
        )
    return "; ".join(parts) or "-"


def _with_path(probes: dict[str, Any]) -> str:
    if "reachable_delivery" not in probes:
        return ""
    return f"; {_pct(probes['reachable_delivery'])} of the {probes['reachable_pings']} with a path"


def _lost(run: dict[str, Any]) -> str:
    lost = run.get("peerings_lost")
    if lost is None:
        return "-"
    return str(sum(lost.values()))


def _scenario_table(runs: list[dict[str, Any]]) -> list[str]:
    out = [
        "| scenario | network | nodes | pings answered | RTT p50 / p99 (ms) | first answer p50 / p90 (s) |"
        " stretch mean | peerings lost | at rest, per node (sent B/s, CPU, RSS) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        probes = run["probes"]
        first = run.get("first_answer_s") or run.get("neighbour_first_answer_s") or run.get("recovery_s")
        first_text = (
            f"{_s(first, 'p50')} / {_s(first, 'p90')} ({first['answered']}/{first['count']})"
            if first
            else "-"
        )
        stretch = (run.get("path") or {}).get("stretch")
        out.append(
            f"| {run['scenario']} | {run['variant']} | {run['nodes']} |"
            f" {_pct(probes['delivery'])} of {probes['pings']}{_with_path(probes)} |"
            f" {_ms(probes['rtt_ms'], 'p50')} / {_ms(probes['rtt_ms'], 'p99')} | {first_text} |"
            f" {_s(stretch, 'mean')} | {_lost(run)} | {_rest(run)} |"
        )
    return [*out, ""]


WHAT_FIRST = """\
"Peerings lost" counts the ends that logged a peering ending (so one loss seen by
both ends counts twice), from all nodes up (cold, wan, harsh) or settled (flaps,
restarts) to the end of the run, the node's own stops left out; under restarts
the victims' neighbours lose theirs by design, under flaps where a link stayed
down long enough.

"First answer" is, for cold and wan, the time from the first launch until a pair's
first ping was answered (the nodes take a few seconds to start: see "all up");
for restarts, from the restarted node answering its API until each neighbour's
ping to it was answered; for flaps, from the link coming back until a ping across
it (each way) was answered."""


def render_testbed(stored: dict[str, dict[str, Any]]) -> list[str]:
    section = stored.get("testbed")
    if section is None:
        return []
    out = ["## Testbed: real processes on emulated links", "", _stamp(section), ""]
    if "error" in section:
        return [*out, f"Failed: `{section['error'].splitlines()[-1] if section['error'] else '?'}`", ""]
    result = section["result"]
    out += [*ABOUT.splitlines(), ""]
    settings = result["settings"]
    out += [
        f"Graph `{settings['graph']}` (seed {settings['seed']}), {settings['duration_s']:g} s per run.",
        "",
    ]
    runs = result.get("runs", [])
    if runs:
        out += _scenario_table(runs)
        out += [*WHAT_FIRST.splitlines(), ""]
        ups = [
            f"{r['variant']} {r['all_up_s']:.1f} s"
            for r in runs
            if r["scenario"] == "cold" and "all_up_s" in r
        ]
        if ups:
            out += [f"All nodes answering their API after the cold launch: {', '.join(ups)}.", ""]
        for name in ("delivery", "first_answers", "stretch"):
            plot = section.get("plots", {}).get(name)
            if plot:
                out += [f"![{name}]({plot})", ""]
    if result.get("scale"):
        out += _scale(result["scale"])
    if result.get("calibration"):
        out += _calibration(result["calibration"])
    for extra in section.get("notes", []):
        out += [extra, ""]
    return out


ABOUT_FEDERATION = """\
Two real Synapses exchange room messages across the testbed
(`bench/testbed/federation.py`). Through Pinewood: five Pinewood nodes in a line
of four links, each 50 ms one way with 1% loss each way (10 Mbit/s); Synapse A
beside the first node and B beside the last, each federating through its node's
gateway, so every request rides a QUIC session over the overlay. The same run then
kills the middle node (SIGKILL) midway through the messages and starts it again,
same key, 2 s later. Directly: the same two Synapses over one link with the path's
whole delay and loss (200 ms one way, 3.94% each way), plain HTTPS federation, no
node between them: the floor. A user on A sends one message at a time, 1-2 s
apart; a message's delay runs from A's send call returning to B's client reading it
from a `/sync` long-poll that is always open. "Stored on B" is B's own record of
when it persisted the event, on the same clock."""


def render_federation(stored: dict[str, dict[str, Any]]) -> list[str]:
    section = stored.get("federation")
    if section is None:
        return []
    out = ["## Federation across the testbed: Synapse to Synapse, through Pinewood and directly", ""]
    out += [_stamp(section), ""]
    if "error" in section:
        return [*out, f"Failed: `{section['error'].splitlines()[-1] if section['error'] else '?'}`", ""]
    out += [*ABOUT_FEDERATION.splitlines(), ""]
    out += [
        "| path | messages arrived | delay p50 / p90 / p99 / max (ms) | stored on B, p50 / p99 (ms) |"
        " worst message |",
        "|---|---:|---:|---:|---|",
    ]
    for run in section["result"]["runs"]:
        for series in run["series"]:
            delay, stored_delay = series["delay_ms"], series["stored_delay_ms"]
            worst = series.get("worst") or {}
            after_kill = worst.get("sent_after_kill_s")
            worst_text = f"{_f(worst.get('delay_ms'), 0)} ms" + (
                f", sent {after_kill:.2f} s after the kill" if after_kill is not None else ""
            )
            out.append(
                f"| {series['label']} ({run['path']}) | {series['arrived']}/{series['messages']} |"
                f" {_f(delay.get('p50'), 0)} / {_f(delay.get('p90'), 0)} / {_f(delay.get('p99'), 0)} /"
                f" {_f(delay.get('max'), 0)} |"
                f" {_f(stored_delay.get('p50'), 0)} / {_f(stored_delay.get('p99'), 0)} | {worst_text} |"
            )
    rank = "Quantiles take the value at rank q x n counted from 0: of 100 messages, p99 is the largest."
    return [*out, "", rank, ""]
