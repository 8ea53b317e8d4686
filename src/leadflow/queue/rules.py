"""The queue's order, as pure functions: which bucket a task sits in, its rank inside the
bucket, and the sentence that tells the rep why it is next.

The order (best first):

0. **Callbacks** the lead asked for, once their hour has come (never before), earliest first.
1. **New hot leads** (A+/A, not yet touched, assigned in the last 24 hours), newest first:
   the chance of a live conversation falls with every minute of delay (the brief's curve:
   5 min 7.1 %, 15 min 12.3 %, 30 min 14.3 %, 60 min 13 %, 1 day 5.4 %), and a lead that
   just arrived jumps the queue.
2. **Retries and engaged leads**: a busy line to try again, a lead who just opened an email,
   clicked or visited the site (for an hour after the signal).
3. **Never contacted**, by grade and probability.
4. **The rest**, by grade, probability and attempts left.

Inside buckets 3 and 4 a lead whose best hour to contact (the local hour it most often
opened, clicked, visited, replied or answered the phone) is the current hour moves ahead of
the others: its rank carries ``BEST_HOUR_BOOST`` during that hour (the worker moves the boost
every hour).

The database index ``(owner_id, bucket, rank DESC, due_at)`` holds this order, so taking the
next task is one indexed ``LIMIT 1 … FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from itertools import pairwise

HOT_GRADES = frozenset({"A+", "A"})
HOT_WINDOW = timedelta(hours=24)
ENGAGED_WINDOW = timedelta(hours=1)
GRADE_WEIGHT = {"A+": 5.0, "A": 4.0, "B": 3.0, "C": 2.0, "D": 1.0}
# Larger than any static rank (grade + probability + attempts ≤ 6.1), far below an epoch.
BEST_HOUR_BOOST = 100.0
BOOSTED = BEST_HOUR_BOOST / 2
# Signals needed before a lead has a best hour of its own.
MIN_HOUR_SIGNALS = 2
# The brief's speed-to-lead curve: minutes of delay → chance of a live conversation.
REACH_CURVE: tuple[tuple[float, float], ...] = (
    (5, 0.071), (15, 0.123), (30, 0.143), (60, 0.13), (1440, 0.054))


class Bucket(IntEnum):
    """The queue's coarse order; lower goes first."""

    CALLBACK = 0
    NEW_HOT = 1
    ENGAGED = 2
    NEVER_CONTACTED = 3
    REST = 4


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a task sits in its owner's queue, and until when (None: for good)."""

    bucket: Bucket
    rank: float
    until: datetime | None = None


def static_rank(grade: str | None, probability: float | None, attempts: int = 0,
                budget: int = 6) -> float:
    """Grade first, then learned probability, then attempts left (a fresher lead first)."""
    left = max(budget - attempts, 0) / max(budget, 1)
    return GRADE_WEIGHT.get(grade or "", 0.0) + (probability or 0.0) + 0.1 * left


def best_hour(hours: Sequence[int]) -> int | None:
    """The local hour a lead responds at most (earliest on a tie), from the hours of its
    signals; ``None`` with fewer than ``MIN_HOUR_SIGNALS``."""
    if len(hours) < MIN_HOUR_SIGNALS:
        return None
    counts = Counter(hours)
    return min(counts, key=lambda h: (-counts[h], h))


def place(*, callback: bool, grade: str | None, probability: float | None, touched: bool,
          assigned_at: datetime | None, due_at: datetime, now: datetime, attempts: int = 0,
          budget: int = 6, engaged: bool = False, best: int | None = None,
          local_hour: int | None = None) -> Placement:
    """The bucket and rank of a task at ``now`` (``local_hour``: the hour now, local time,
    for the best-hour boost)."""
    if callback:
        return Placement(Bucket.CALLBACK, -due_at.timestamp())
    if (not touched and grade in HOT_GRADES and assigned_at is not None
            and now - assigned_at < HOT_WINDOW):
        return Placement(Bucket.NEW_HOT, assigned_at.timestamp(), assigned_at + HOT_WINDOW)
    rank = static_rank(grade, probability, attempts, budget)
    if engaged:
        return Placement(Bucket.ENGAGED, rank, now + ENGAGED_WINDOW)
    if best is not None and best == local_hour:
        rank += BEST_HOUR_BOOST
    if not touched:
        return Placement(Bucket.NEVER_CONTACTED, rank)
    return Placement(Bucket.REST, rank)


def reach_chance(minutes: float) -> float:
    """The brief's chance of a live conversation after ``minutes`` of delay (interpolated)."""
    if minutes <= REACH_CURVE[0][0]:
        return REACH_CURVE[0][1]
    for (m0, p0), (m1, p1) in pairwise(REACH_CURVE):
        if minutes <= m1:
            return p0 + (p1 - p0) * (minutes - m0) / (m1 - m0)
    return REACH_CURVE[-1][1]


def _age(minutes: float) -> str:
    if minutes < 60:
        return f"{max(int(minutes), 0)} min"
    if minutes < 48 * 60:
        return f"{int(minutes // 60)} h"
    return f"{int(minutes // 1440)} days"


def reason(*, bucket: int, grade: str | None, due_at: datetime, assigned_at: datetime | None,
           attempts: int, budget: int, now: datetime, channel: str,
           best_hour_now: bool = False) -> str:
    """Why this task is next, in the words shown on the task card."""
    g = grade or "ungraded"
    if best_hour_now and bucket >= Bucket.NEVER_CONTACTED:
        return f"grade {g} lead, now is its best hour to reach"
    match bucket:
        case Bucket.CALLBACK:
            return f"call back requested for {due_at.isoformat(timespec='minutes')}"
        case Bucket.NEW_HOT:
            age = (now - (assigned_at or due_at)).total_seconds() / 60
            return (f"new {g} lead, {_age(age)} old: reach chance now "
                    f"{reach_chance(age):.0%}, {reach_chance(24 * 60):.0%} after a day")
        case Bucket.ENGAGED:
            return f"{g} lead engaged in the last hour: strike while it is warm"
        case Bucket.NEVER_CONTACTED:
            return f"never contacted, grade {g}"
    overdue = (now - due_at).total_seconds() / 60
    late = f", due {_age(overdue)} ago" if overdue >= 60 else ""
    return f"{channel} step, attempt {attempts + 1} of {budget}, grade {g}{late}"
