"""A small plot of each goal's progress for the enrollment page: the goal's fact over time (the
values recorded in the fact's own unit), the baseline when it was agreed and the deadline.
PNG data addresses for an ``<img>``: the web's pages allow no inline style (which SVG text uses)
and no script; matplotlib draws on the server."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pathways.views.report import _png


def goal_plots(goals: list[dict[str, Any]]) -> dict[str, str]:
    """goal id -> PNG data address, for the goals with at least one value to show. Each goal is a
    dict with ``id, fact, target, agreed_on, deadline, baseline, unit`` and ``points``: (date, value)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    found: dict[str, str] = {}
    for goal in goals:
        points: list[tuple[dt.date, float]] = sorted(goal.get("points") or [])
        if goal.get("baseline") is not None and goal.get("agreed_on") and not any(d == goal["agreed_on"] for d, _ in points):
            points = sorted([*points, (goal["agreed_on"], goal["baseline"])])
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(4.5, 1.8))
        ax.plot([d for d, _ in points], [v for _, v in points], color="#2e6da4", marker="o", markersize=3)
        if goal.get("agreed_on") and goal.get("baseline") is not None:
            ax.scatter([goal["agreed_on"]], [goal["baseline"]], color="#e69f00", zorder=3, label="baseline")
        if goal.get("deadline"):
            ax.axvline(goal["deadline"], color="#999999", linestyle="--", linewidth=1, label=f"deadline {goal['deadline']}")
        ax.set_title(f"{goal['fact']} (target {goal['target']})", fontsize=8)
        ax.set_ylabel(goal.get("unit") or "", fontsize=7)
        ax.tick_params(labelsize=7)
        fig.autofmt_xdate()
        ax.legend(loc="best", fontsize=6)
        found[goal["id"]] = _png(fig)
        plt.close(fig)
    return found
