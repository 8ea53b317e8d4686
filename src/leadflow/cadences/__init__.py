"""Cadences (节奏), enrollments, tasks and dispositions, nurture programs and A/B tests."""
