"""The report's sections on hostile input: the attack suite and the decoder fuzzing."""

from __future__ import annotations

from typing import Any

from bench.report_text import _f, _pct, _stamp

ABOUT_ATTACKS = """\
Each attack of `bench/attacks.py` runs in processes of its own against a node T
started with the default settings, on a fresh triangle: T, and good peers G1 and
G2 that reach each other only through T. While it runs, G1 pings G2 through T ten
times a second, and a quiet peer of T's, which only ever hears T's keepalives,
notes the longest silence from T (T must send it something every 3 s; a Go peer
would drop it after 5). `none` is the same measurement without an attack;
`combined` runs five floods at once from five addresses (genuine bootstraps, 1 KiB
traffic, the deepest coordinates, forged bootstraps with reconnects, 300 silent
connections). The machine has two cores, shared by T, the attackers, G1, G2 and
the measuring side, so T's CPU and the round trips are those of a busy machine.
"""


def _closed(row: dict[str, Any]) -> str:
    return "never" if row["closed_after_s"] is None else _f(row["closed_after_s"], 2, " s")


def _attacks(section: dict[str, Any]) -> list[str]:
    out = [
        "## Hostile peers: attacks on a node while its good peers ping through it",
        "",
        _stamp(section),
        "",
    ]
    if "error" in section:
        return [*out, f"Failed: `{section['error'].splitlines()[-1] if section['error'] else '?'}`", ""]
    out += [*ABOUT_ATTACKS.splitlines(), ""]
    out += [
        "| attack | s | attacker got in | T CPU (cores) | G1-G2 ping loss | p99 RTT (ms) |"
        " good peerings dropped | attacker closed after | T RSS growth (MB) | longest silence to a"
        " quiet peer (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in section["result"]:
        rate = f"{row['rate']:,.0f} {row['unit']}/s" if row["unit"] else "-"
        if row["attack"] == "combined":
            rate = "; ".join(f"{p['attack']} {p['sent'] / row['seconds']:,.0f}/s" for p in row["parts"])
        out.append(
            f"| {row['attack']} | {row['seconds']:.0f} | {rate} | {row['target_cpu']:.2f} |"
            f" {_pct(row['ping_loss'])} ({row['pings']} pings) | {_f(row['p99_rtt_ms'], 1)} |"
            f" {row['good_peerings_dropped']} | {_closed(row)} | {row['rss_growth_mb']:.1f} |"
            f" {row['max_silence_s']:.2f} |"
        )
    probes = [r for r in section["result"] if r["probes"]]
    if probes:
        out.append("")
        out += [
            f"- {r['attack']}: {round(r['rate'] * r['seconds']):,} idle connections opened and held;"
            f" {r['probes_served']} of {r['probes']} requests of a good client answered within 2 s"
            f" (slowest {r['probe_max_s']:.2f} s)."
            for r in probes
        ]
    out.append("")
    return out


def _fuzz(section: dict[str, Any]) -> list[str]:
    out = ["## Fuzzing the wire decoders (atheris, coverage-guided)", "", _stamp(section), ""]
    if "error" in section:
        return [*out, f"Failed: `{section['error'].splitlines()[-1] if section['error'] else '?'}`", ""]
    r = section["result"]
    out += [
        "One target gives every input to the frame decoder, the forwarding fast path and its rewrites,"
        " the handshake, announcement, bootstrap and wakeup bodies, coordinates and varu64s"
        " (`bench/fuzz.py`); anything but the codec's own `DecodeError`, or a decoded value that does"
        " not re-encode to the same bytes, is a failure.",
        "",
        f"- inputs: {r['runs']:,} in {r['seconds']:,.0f} s ({r['execs_per_second']:,.0f} a second),"
        f" atheris {r.get('atheris', '?')}",
        f"- failures: {r['failures']}",
        f"- coverage: {r.get('coverage', '-')} edges, {r.get('features', '-')} features;"
        f" corpus at the end: {r.get('corpus_size', '-')} inputs",
        "",
    ]
    return out


def render_hostile(stored: dict[str, dict[str, Any]]) -> list[str]:
    out: list[str] = []
    if "hostile" in stored:
        out += _attacks(stored["hostile"])
    if "fuzz" in stored:
        out += _fuzz(stored["fuzz"])
    return out
