"""Scoring and grading: fit rules, engagement with decay, a learned model, grades and MQL."""
