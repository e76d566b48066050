"""PNG plots of simulator results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from router.wire.extension import extension_names

Result = dict[str, Any]


def _label(result: Result) -> str:
    g, config = result["graph"], result["config"]
    label = f"{config['scenario']} · {g['name']} ({g['nodes']})"
    if config.get("extensions"):
        share = config.get("extended_fraction", 1.0)
        label += f" · {'+'.join(extension_names(config['extensions']))}"
        label += "" if share == 1.0 else f" on {share:.0%}"
    return label


def convergence(results: list[Result], path: Path) -> Path:
    """Tree agreement, snake correctness and first-frame delivery over simulated time."""
    fig, axes = plt.subplots(len(results), 1, figsize=(8, 2.6 * len(results)), squeeze=False)
    for ax, result in zip(axes[:, 0], results, strict=True):
        timeline = result["timeline"]
        ts = [s["t"] for s in timeline]
        ax.plot(ts, [s["tree"] for s in timeline], label="tree agreement")
        ax.plot(ts, [s["snake"] for s in timeline], label="snake correct")
        rounds = [r for r in result["rounds"] if r["first"]["sent"]]
        ax.plot(
            [r["t"] for r in rounds],
            [r["first"]["delivered"] / r["first"]["sent"] for r in rounds],
            "o-",
            markersize=3,
            label="delivered (first frame)",
        )
        for event in result["events"][:1]:
            ax.axvline(event["t"], color="grey", linestyle=":", label=event["kind"])
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("fraction")
        ax.set_title(_label(result), fontsize=9)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("simulated seconds")
    axes[0, 0].legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def stretch_cdf(results: list[Result], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for result in results:
        for kind, style in (("first", "-"), ("established", "--")):
            values = result["stretch_samples"][kind]
            if values:
                ys = [(i + 1) / len(values) for i in range(len(values))]
                ax.step(values, ys, style, where="post", label=f"{kind} · {_label(result)}")
    ax.set_xscale("log")
    ax.set_xlabel("stretch (hops taken / shortest hops, log scale)")
    ax.set_ylabel("fraction of delivered frames")
    ax.set_title("Path stretch, first frame (SNEK) and established flow (tree)", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return _save(fig, path)


def control_traffic(results: list[Result], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    for result in results:
        timeline = result["timeline"][1:]  # the first sample covers only the start-up instant
        ax.plot(
            [s["t"] for s in timeline],
            [s["control_bytes_per_node_s"] for s in timeline],
            label=_label(result),
        )
    ax.set_yscale("symlog", linthresh=10)
    ax.set_xlabel("simulated seconds")
    ax.set_ylabel("control bytes per node per second")
    ax.set_title("Control traffic (announcements, bootstraps, keepalives, wakeups)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def memory(results: list[Result], path: Path) -> Path:
    """Router state per node against node count, one point per run."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for signed in (True, False):
        points = sorted(
            (
                r["graph"]["nodes"],
                r["memory"]["state_bytes_mean"] / 1024,
                r["memory"]["state_bytes_max"] / 1024,
            )
            for r in results
            if r["signatures"] is signed
        )
        if points:
            label = "signed" if signed else "--no-signatures"
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=f"mean ({label})")
            ax.plot([p[0] for p in points], [p[2] for p in points], "x:", label=f"max ({label})")
    ax.axhline(50, color="red", linestyle="--", linewidth=0.8, label="50 KiB target")
    ax.set_xscale("log")
    ax.set_xlabel("nodes")
    ax.set_ylabel("router state per node (KiB)")
    ax.set_title("Router state per node at the end of cold starts", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
