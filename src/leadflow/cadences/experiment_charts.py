"""Chart traces for the A/B report (Plotly's JSON format; titles are added by templates)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from leadflow.cadences.abtest import Verdict

# One colour per arm, control first.
ARM_COLOURS = ("#64748b", "#2563eb", "#16a34a", "#ea580c", "#9333ea", "#ca8a04", "#0f766e",
               "#db2777")
GRID_POINTS = 200


def posteriors(verdict: Verdict) -> list[dict[str, Any]]:
    """Lines: each arm's posterior density of the rate (in %), over the arms' intervals.

    Where the curves overlap the arms may be equal; curves apart mean a real difference.
    """
    low = min(a.ci_low for a in verdict.arms)
    high = max(a.ci_high for a in verdict.arms)
    pad = (high - low) * 0.25 or 0.01
    grid = np.linspace(max(low - pad, 0.0), min(high + pad, 1.0), GRID_POINTS)
    traces = []
    for i, arm in enumerate(verdict.arms):
        a, b = 1.0 + arm.successes, 1.0 + arm.enrolled - arm.successes
        density = stats.beta.pdf(grid, a, b) / 100  # per percentage point
        traces.append({
            "type": "scatter", "mode": "lines", "name": arm.key, "fill": "tozeroy",
            "x": [round(float(x) * 100, 3) for x in grid],
            "y": [round(float(y), 5) for y in density],
            "line": {"color": ARM_COLOURS[i % len(ARM_COLOURS)]},
            "hovertemplate": f"{arm.key}: %{{x:.1f}}%<extra></extra>",
        })
    return traces


def intervals(verdicts: Sequence[Verdict], labels: Mapping[str, str]) -> list[dict[str, Any]]:
    """Points with error bars: every arm's rate and 95% credible interval, per metric."""
    traces = []
    keys = [a.key for a in verdicts[0].arms] if verdicts else []
    for i, key in enumerate(keys):
        arms = [v.arm(key) for v in verdicts]
        means = [a.mean * 100 for a in arms]
        traces.append({
            "type": "scatter", "mode": "markers", "name": key,
            "x": [labels.get(v.metric, v.metric) for v in verdicts],
            "y": [round(m, 2) for m in means],
            "error_y": {"type": "data", "symmetric": False,
                        "array": [round(a.ci_high * 100 - m, 2) for a, m in zip(arms, means,
                                                                               strict=True)],
                        "arrayminus": [round(m - a.ci_low * 100, 2)
                                       for a, m in zip(arms, means, strict=True)]},
            "marker": {"size": 10, "color": ARM_COLOURS[i % len(ARM_COLOURS)]},
        })
    return traces
