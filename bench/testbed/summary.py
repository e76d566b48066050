"""The testbed's results as lines of text, for the terminal and the report."""

from __future__ import annotations

from typing import Any


def _q(block: Any, key: str = "p50", scale: float = 1.0, digits: int = 2) -> str:
    if not block or key not in block:
        return "-"
    return f"{block[key] * scale:.{digits}f}"


def run_line(run: dict[str, Any]) -> str:
    probes = run.get("probes") or {}
    rtt = probes.get("rtt_ms")
    parts = [
        f"{run['scenario']:<9} {run['variant']:<8} {run['nodes']:>3} nodes",
        f"delivery {probes.get('delivery', 0) * 100:5.1f}% of {probes.get('pings', 0)}",
        *(
            [f"{probes['reachable_delivery'] * 100:.1f}% of {probes['reachable_pings']} with a path"]
            if probes.get("reachable_delivery") is not None
            else []
        ),
        f"rtt p50 {_q(rtt, 'p50', digits=1)} ms p99 {_q(rtt, 'p99', digits=1)} ms",
    ]
    if "first_answer_s" in run:
        fa = run["first_answer_s"]
        parts.append(f"first answer p50 {_q(fa)} s p90 {_q(fa, 'p90')} s ({fa['answered']}/{fa['count']})")
    if "recovery_s" in run:
        rec = run["recovery_s"]
        parts.append(
            f"after a flap p50 {_q(rec)} s p90 {_q(rec, 'p90')} s ({rec['answered']}/{rec['count']})"
        )
    if "neighbour_first_answer_s" in run:
        near, far = run["neighbour_first_answer_s"], run["other_first_answer_s"]
        parts.append(f"restarted node answers neighbours p50 {_q(near)} s p90 {_q(near, 'p90')} s")
        parts.append(f"others p50 {_q(far)} s ({run['restarts_per_min']}/min)")
    if run.get("path"):
        parts.append(f"stretch p50 {_q(run['path']['stretch'])} mean {_q(run['path']['stretch'], 'mean')}")
    if run.get("peerings_lost") is not None:
        parts.append(f"peerings lost {sum(run['peerings_lost'].values())}")
    rest = (run.get("rest") or {}).get("by_kind", {})
    for kind, cost in rest.items():
        parts.append(
            f"{kind} at rest {_q(cost['link_bytes_per_s'], 'mean', digits=0)} B/s"
            f" cpu {_q(cost['cpu_per_s'], 'mean', 100, 1)}% rss {_q(cost['rss_mib'], 'mean', digits=0)} MiB"
        )
    return "; ".join(parts)


def describe(results: dict[str, Any]) -> str:
    lines = []
    calibration = results.get("calibration")
    if calibration:
        lines.append(f"link emulator ({calibration['scheduling']} scheduling):")
        for row in calibration["accuracy"]:
            low, high = row["loss_95"]
            lines.append(
                f"  {row['link']:<20} delay p50 {_q(row['delay_ms'], digits=3)} ms"
                f" p99 {_q(row['delay_ms'], 'p99', digits=3)} ms;"
                f" loss {row['loss'] * 100:.2f}% (95%: {low * 100:.2f}-{high * 100:.2f}) of {row['sent']}"
            )
        for row in calibration["load"]:
            lines.append(
                f"  load {row['offered_pps']:>6} pps: delivered {row['delivered'] * 100:.1f}%,"
                f" delay p50 {_q(row['delay_ms'], digits=3)} p99 {_q(row['delay_ms'], 'p99', digits=3)} ms,"
                f" emulator cpu {row['emulator_cpu_share'] * 100:.0f}%"
            )
    lines.extend(run_line(run) for run in results.get("runs", []))
    return "\n".join(lines)
