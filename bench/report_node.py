"""The report's section on what one node costs: its start, its memory, and a
settled network's traffic at rest (:mod:`bench.startup`, :mod:`bench.idle`)."""

from __future__ import annotations

from typing import Any

from bench import idle, startup
from bench.report_text import _f, _stamp

ABOUT = """\
**Start-up**: `pinewood run` started alone (TCP on loopback, nothing else
configured) until its admin API first answers; processor time (user and
system) and resident memory read from `/proc` then, and memory again after
a few seconds at rest; medians of several starts. **At rest**: nodes on
loopback in a ring with chords, left alone after peering, then measured for a
window: what each writes to its peerings (overlay bytes, without TCP/IP
headers), by frame type; its wake-ups (voluntary context switches); its
processor time; its memory, resident (RSS) and proportional (PSS: the pages
the nodes share, the interpreter's and the libraries', divided among them).
The reference's schedule is the same nodes, with the same keys, without routing extensions.
"""


def run_node(quick: bool) -> dict[str, Any]:
    """The section's figures (``quick``: two starts and a tiny network briefly)."""
    runs, settle = (2, 0.5) if quick else (7, 5.0)
    starts = startup.measure(runs, settle)
    nodes, rest, window = (3, 0.0, 5.0) if quick else (10, 30.0, 60.0)
    return {
        "startup": {"runs": runs, "settle_s": settle, **startup.summary(starts)},
        "idle": [idle.measure(nodes, rest, window, reference) for reference in (False, True)],
    }


def previous_node(old: dict[str, Any] | None) -> dict[str, Any] | None:
    """The figures of the run before, kept beside the new ones."""
    if not old or "startup" not in old:
        return None
    return {"measured": old.get("measured", "?"), "startup": old["startup"], "idle": old.get("idle", [])}


def _startup_row(label: str, s: dict[str, Any]) -> str:
    return (
        f"| {label} | {_f(s['cpu_s'], 2, ' s')} | {_f(s['wall_s'], 2, ' s')} | "
        f"{_f(s['rss_mib'], 1, ' MiB')} | {_f(s['settled_rss_mib'], 1, ' MiB')} |"
    )


def _idle_row(label: str, r: dict[str, Any]) -> str:
    by_type = ", ".join(f"{t} {v:.0f}" for t, v in r["control_bytes_per_node_s"].items() if v) or "none"
    kind = "reference schedule" if r["reference"] else "Pinewood"
    return (
        f"| {label} | {kind} | {r['nodes']} / {r['edges']} | {_f(r['bytes_per_node_s'], 0)} | {by_type} | "
        f"{_f(r['wakeups_per_node_s'], 1)} | {_f(r['cpu_ms_per_node_s'], 1, ' ms')} | "
        f"{_f(r['rss_mib_median'], 1, ' MiB')} | {_f(r.get('pss_mib_median'), 1, ' MiB')} |"
    )


def render_node(stored: dict[str, dict[str, Any]]) -> list[str]:
    section = stored.get("node")
    if section is None:
        return []
    out = ["## One node: start-up, memory, and a network at rest", "", _stamp(section), ""]
    if "error" in section:
        return [*out, f"Failed: `{section['error'].splitlines()[-1] if section['error'] else '?'}`", ""]
    out += [*ABOUT.splitlines(), ""]
    previous = section.get("previous")
    out += [
        "| run | processor time to the first admin answer | wall | RSS then | RSS at rest |",
        "|---|---|---|---|---|",
        _startup_row("this one", section["startup"]),
    ]
    if previous:
        out.append(_startup_row(f"the run before ({previous['measured']})", previous["startup"]))
    out += [
        "",
        "| run | schedule | nodes / peerings | bytes/s per node | protocol bytes/s by frame type |"
        " wake-ups/s | CPU per s | RSS | PSS |",
        "|---|---|---|---|---|---|---|---|---|",
        *(_idle_row("this one", r) for r in section["idle"]),
    ]
    if previous:
        out += [_idle_row(f"the run before ({previous['measured']})", r) for r in previous["idle"]]
    return [*out, ""]
