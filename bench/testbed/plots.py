"""PNG plots of testbed results (matplotlib, Agg backend): delivery over time,
first-answer latency and path stretch, each variant on its own line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

Run = dict[str, Any]
STYLE = {"pinewood": ("tab:green", "-"), "go": ("tab:blue", "--"), "mixed": ("tab:orange", ":")}


def _scenarios(runs: Sequence[Run]) -> list[str]:
    return list(dict.fromkeys(r["scenario"] for r in runs))


def delivery(runs: Sequence[Run], path: Path) -> Path:
    """Share of pings answered per 2 s of each scenario, by variant."""
    names = _scenarios(runs)
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 2.3 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        for run in (r for r in runs if r["scenario"] == name):
            series = run["probes"]["series"]
            colour, line = STYLE.get(run["variant"], ("black", "-"))
            ax.plot(
                [b["t"] for b in series],
                [b["delivery"] for b in series],
                line,
                color=colour,
                marker="o",
                markersize=2,
                label=run["variant"],
            )
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{name}: pings answered (share of those sent in each 2 s)", fontsize=9)
        ax.set_ylabel("answered")
        ax.legend(loc="lower right", fontsize=7)
    axes[-1, 0].set_xlabel("seconds since the scenario began (the first launch for cold, wan, mobility)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cdf(ax: Any, values: Sequence[float], total: int, label: str, variant: str) -> None:
    if not values or not total:
        return
    ordered = sorted(values)
    colour, line = STYLE.get(variant, ("black", "-"))
    ax.step(
        ordered, [(i + 1) / total for i in range(len(ordered))], line, color=colour, where="post", label=label
    )


def first_answers(runs: Sequence[Run], path: Path) -> Path:
    """CDFs: first answer after a cold start; after a restart (from its neighbours); after a flap."""
    panels = [
        (
            "cold",
            "first_answer_values",
            "first_answer_s",
            "cold start: first answer between a pair, s after launch",
        ),
        ("wan", "first_answer_values", "first_answer_s", "WAN cold start: first answer, s after launch"),
        (
            "restarts",
            "recovery_values",
            "neighbour_first_answer_s",
            "restart: neighbour's first answer, s after up",
        ),
        ("flaps", "recovery_values", "recovery_s", "link flap: first answer across it, s after it is back"),
    ]
    panels = [p for p in panels if any(r["scenario"] == p[0] for r in runs)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.4 * max(1, len(panels))), squeeze=False)
    for ax, (scenario, values, summary, title) in zip(axes[:, 0], panels, strict=True):
        for run in (r for r in runs if r["scenario"] == scenario):
            _cdf(ax, run[values], run[summary]["count"], run["variant"], run["variant"])
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("share of pairs")
        ax.legend(loc="lower right", fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def stretch(runs: Sequence[Run], path: Path) -> Path:
    """CDF of hops taken over the shortest path, per scenario (all-Pinewood runs)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    styles = ["-", "--", ":", "-."]
    for i, run in enumerate(r for r in runs if r.get("path") and r["path"]["pairs"]):
        ratios = [p["hops"] / p["shortest"] for p in run["path"]["pairs"] if p["shortest"] > 0]
        ordered = sorted(ratios)
        ax.step(
            ordered,
            [(k + 1) / len(ordered) for k in range(len(ordered))],
            styles[i % len(styles)],
            where="post",
            label=f"{run['scenario']} ({len(ordered)} pairs)",
        )
    ax.set_xlabel("hops taken / shortest path (mean of the two ways)")
    ax.set_ylabel("share of pairs")
    ax.set_title("Path stretch, all-Pinewood, settled network", fontsize=9)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
