"""Periodic routing work: route every due lead, SLA checks, recycling, away reps.

Each chunk runs in its own transaction, so a crash loses at most the chunk in flight, which
is still due (its ``route_due_at`` is only cleared by the commit that routes it): re-running
resumes without loss or duplicates.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select

from leadflow.db import session_scope
from leadflow.leads.models import Lead
from leadflow.routing import service
from leadflow.routing.service import RouteSummary, SweepSummary


def due_count(*, now: datetime) -> int:
    """Leads due for routing at ``now``."""
    with session_scope() as session:
        return session.scalar(
            select(func.count()).select_from(Lead).where(Lead.route_due_at <= now)) or 0


def route_all_due(
    *, now: datetime, chunk: int = service.ROUTE_CHUNK,
    progress: Callable[[int, int], None] | None = None, lead_ids: list[int] | None = None,
) -> RouteSummary:
    """Route every lead due at ``now`` (or the due ones among ``lead_ids``), chunk by chunk;
    ``progress(done, total)`` after each chunk."""
    total = RouteSummary()
    expected = due_count(now=now) if progress else 0
    todo = lead_ids
    while True:
        ids = None
        if todo is not None:
            ids, todo = todo[:chunk], todo[chunk:]
        with session_scope() as session:
            summary = service.route_due(session=session, now=now, lead_ids=ids, limit=chunk)
        total.add(summary)
        if progress is not None:
            progress(total.leads, max(expected, total.leads))
        if (todo is None and summary.leads == 0) or todo == []:
            break
    return total


def sweep(*, now: datetime) -> SweepSummary:
    """One pass of every periodic routing check, each in its own transaction, then route what
    they made due."""
    total = SweepSummary()
    steps: list[tuple[str, Callable[..., SweepSummary]]] = [
        ("sla", service.check_sla), ("recycle", service.recycle),
        ("away", service.reassign_away),
    ]
    for _name, step in steps:
        with session_scope() as session:
            done = step(session=session, now=now)
        total.escalated += done.escalated
        total.sla_rerouted += done.sla_rerouted
        total.warned += done.warned
        total.recycled += done.recycled
        total.away_rerouted += done.away_rerouted
    total.routed = route_all_due(now=now)
    return total
