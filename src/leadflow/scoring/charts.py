"""Chart traces for the scoring pages (Plotly's JSON format; titles are added by templates)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from leadflow.scoring.report import CalibrationReport
from leadflow.scoring.schemas import GRADES

# One colour per grade, best to worst.
GRADE_COLOURS = ("#0f766e", "#16a34a", "#ca8a04", "#ea580c", "#94a3b8")


def grade_distribution(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Bars: how many leads hold each grade."""
    return [{"type": "bar", "x": list(GRADES), "y": [counts.get(g, 0) for g in GRADES],
             "marker": {"color": list(GRADE_COLOURS)}, "hoverinfo": "x+y"}]


def lift(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Bars: conversion rate of each grade on held-out data, with the lift as text."""
    return [{
        "type": "bar", "x": [r["grade"] for r in rows],
        "y": [round(float(r["rate"]) * 100, 2) for r in rows],
        "text": [f"×{float(r['lift']):.2f}" for r in rows], "textposition": "outside",
        "marker": {"color": list(GRADE_COLOURS[:len(rows)])},
    }]


def calibration(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Predicted against observed conversion per bin, beside the perfect diagonal."""
    predicted = [round(float(r["mean_predicted"]) * 100, 2) for r in rows]
    observed = [round(float(r["observed"]) * 100, 2) for r in rows]
    top = max([*predicted, *observed, 1.0])
    return [
        {"type": "scatter", "mode": "lines", "x": [0, top], "y": [0, top],
         "line": {"dash": "dot", "color": "#94a3b8"}, "hoverinfo": "skip", "name": "="},
        {"type": "scatter", "mode": "lines+markers", "x": predicted, "y": observed,
         "marker": {"size": [max(6, min(18, int(r["n"]) ** 0.5 / 2)) for r in rows]},
         "line": {"color": "#2563eb"}, "name": "model"},
    ]


def conversion_by_grade(rep: CalibrationReport) -> list[dict[str, Any]]:
    """Bars: conversion and MQL → SQL rates of the month's cohorts by first grade."""
    return [
        {"type": "bar", "name": "conversion", "x": [r.grade for r in rep.rows],
         "y": [round((r.conversion or 0) * 100, 2) for r in rep.rows],
         "marker": {"color": list(GRADE_COLOURS)}},
        {"type": "bar", "name": "mql_to_sql", "x": [r.grade for r in rep.rows],
         "y": [round((r.mql_to_sql or 0) * 100, 2) for r in rep.rows],
         "marker": {"color": "#93c5fd"}},
    ]
