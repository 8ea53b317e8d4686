"""Pure cadence decisions: when a step is due, which cadence a lead enrolls in, what a
disposition does to the cadence, and how a returning rep's backlog is spread out.

No session, no clock: ``now`` and everything else is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from leadflow.cadences.models import Channel, ExitReason, Maturity
from leadflow.routing.rules import is_working_day

# The channels whose touches count against a lead's attempt budget (a rep trying to reach
# the person); an automatic nurture email is not an attempt.
ATTEMPT_CHANNELS = frozenset({Channel.CALL, Channel.VOICEMAIL, Channel.GHOST_CALL,
                              Channel.EMAIL, Channel.SMS, Channel.WECHAT, Channel.SOCIAL})
# Look no further than this for a working day (the longest Chinese holiday is 8–9 days).
_MAX_DAYS_AHEAD = 40
DEFAULT_EXITS = (ExitReason.REPLIED, ExitReason.MEETING_BOOKED, ExitReason.QUALIFIED,
                 ExitReason.DISQUALIFIED, ExitReason.UNSUBSCRIBED, ExitReason.BOUNCED,
                 ExitReason.NOT_INTERESTED, ExitReason.WRONG_NUMBER)


@dataclass(frozen=True, slots=True)
class StepTiming:
    """When a step may run: day offset from the previous step, local window."""

    day_offset: int
    window_start: int
    window_end: int


@dataclass(frozen=True, slots=True)
class Calendar:
    """The local calendar steps are scheduled in: time zone and public holidays."""

    timezone: str = "Asia/Shanghai"
    holidays: str | None = "CN"


def next_working_day(day: date, calendar: Calendar) -> date:
    """``day`` itself if it is a working day, else the first working day after it."""
    for i in range(_MAX_DAYS_AHEAD):
        candidate = day + timedelta(days=i)
        if is_working_day(candidate, calendar.holidays):
            return candidate
    return day


def add_working_days(day: date, n: int, calendar: Calendar) -> date:
    """The working day ``n`` working days after ``day`` (0: ``day`` or the next working one)."""
    current = next_working_day(day, calendar)
    for _ in range(n):
        current = next_working_day(current + timedelta(days=1), calendar)
    return current


def step_due(previous_at: datetime, previous_offset: int, step: StepTiming,
             calendar: Calendar, *, at_once: bool = False) -> tuple[datetime, datetime]:
    """When a step is due and when its window closes, counted from the previous step.

    ``at_once``: a new lead's first touch on day 0 is due the moment it is assigned —
    routing only gives leads to reps who are working, and speed-to-lead beats the window.

    Offsets are working days, so a cadence never lands a touch on a weekend or a public
    holiday, and a pause shifts the rest of the cadence instead of piling it up. On the same
    day the step is due at once if its window is open, at the window's start if it has not
    opened yet, and on the next working day if it has closed.
    """
    if at_once and step.day_offset == 0:
        return previous_at, previous_at + timedelta(minutes=step.window_end - step.window_start)
    zone = ZoneInfo(calendar.timezone)
    local = previous_at.astimezone(zone)
    gap = max(step.day_offset - previous_offset, 0)
    day = add_working_days(local.date(), gap, calendar)
    minute = local.hour * 60 + local.minute
    if day == local.date() and minute >= step.window_end:
        day = add_working_days(day + timedelta(days=1), 0, calendar)
    start = _at(day, step.window_start, zone)
    end = _at(day, step.window_end, zone)
    due = max(start, previous_at) if day == local.date() else start
    return due, end


def _at(day: date, minute: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)


def defer_to_working_time(when: datetime, window_start: int, window_end: int,
                          calendar: Calendar) -> datetime:
    """The first moment at or after ``when`` inside the window on a working day.

    Automatic steps due on a holiday (or after hours) wait for the next working window.
    """
    zone = ZoneInfo(calendar.timezone)
    local = when.astimezone(zone)
    day = local.date()
    minute = local.hour * 60 + local.minute
    if is_working_day(day, calendar.holidays) and window_start <= minute < window_end:
        return when
    if is_working_day(day, calendar.holidays) and minute < window_start:
        return _at(day, window_start, zone)
    return _at(add_working_days(day + timedelta(days=1), 0, calendar), window_start, zone)


# --- which cadence ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CadenceSpec:
    """What a cadence asks of a lead to enroll it automatically."""

    id: int
    priority: int
    grades: tuple[str, ...] = ()
    team_ids: tuple[int, ...] = ()
    product_lines: tuple[str, ...] = ()
    # Nurture programs only.
    pool_id: int | None = None
    maturity: Maturity | None = None
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class EnrollFacts:
    """What enrollment rules look at."""

    grade: str | None
    team_id: int | None
    product_line: str | None
    pool_id: int | None = None


def _wants(values: Sequence[object], have: object) -> bool:
    return not values or have in values


def choose_cadence(cadences: Iterable[CadenceSpec], facts: EnrollFacts) -> CadenceSpec | None:
    """The sales cadence a newly assigned lead enrolls in: the first match by priority."""
    for spec in sorted(cadences, key=lambda c: (c.priority, c.id)):
        if (_wants(spec.grades, facts.grade) and _wants(spec.team_ids, facts.team_id)
                and _wants(spec.product_lines, facts.product_line)):
            return spec
    return None


def maturity_of(grade: str | None) -> Maturity:
    """Warm leads are interested and researching (grade B and up); the rest are cold."""
    return Maturity.WARM if grade in ("A+", "A", "B") else Maturity.COLD


def choose_program(programs: Iterable[CadenceSpec], facts: EnrollFacts) -> CadenceSpec | None:
    """The nurture program for a lead put in a nurture pool.

    A program fits when its pool, maturity and topic (empty: any) match; the most specific
    program wins (topic, then maturity, then pool), then priority.
    """
    maturity = maturity_of(facts.grade)
    topic = (facts.product_line or "").casefold()
    fitting = [
        p for p in programs
        if (p.pool_id is None or p.pool_id == facts.pool_id)
        and (p.maturity is None or p.maturity == maturity)
        and (not p.topic or p.topic.casefold() == topic)
    ]
    if not fitting:
        return None
    return min(fitting, key=lambda p: (not p.topic, p.maturity is None, p.pool_id is None,
                                       p.priority, p.id))


# --- dispositions ----------------------------------------------------------------------------


class Disposition(StrEnum):
    """What happened when the rep did the task."""

    CONNECTED = "connected"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail_left"
    WRONG_NUMBER = "wrong_number"
    NOT_INTERESTED = "not_interested"
    CALL_BACK = "call_back"
    MEETING_BOOKED = "meeting_booked"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    SENT = "sent"


# Dispositions offered per channel, in the order of the task card's buttons (and shortcuts).
CALL_DISPOSITIONS = (Disposition.CONNECTED, Disposition.NO_ANSWER, Disposition.BUSY,
                     Disposition.VOICEMAIL, Disposition.CALL_BACK, Disposition.MEETING_BOOKED,
                     Disposition.QUALIFIED, Disposition.NOT_INTERESTED,
                     Disposition.WRONG_NUMBER, Disposition.DISQUALIFIED)
MESSAGE_DISPOSITIONS = (Disposition.SENT, Disposition.CALL_BACK, Disposition.MEETING_BOOKED,
                        Disposition.QUALIFIED, Disposition.NOT_INTERESTED,
                        Disposition.DISQUALIFIED)
BUSY_RETRY = timedelta(minutes=30)


def dispositions_for(channel: Channel) -> tuple[Disposition, ...]:
    """The outcomes a rep can record for a task on ``channel``."""
    if channel in (Channel.CALL, Channel.GHOST_CALL, Channel.VOICEMAIL):
        return CALL_DISPOSITIONS
    return MESSAGE_DISPOSITIONS


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a disposition does: to the attempt count, the cadence and the lead's score."""

    counts_attempt: bool
    contacted: bool = False
    advance: bool = True
    retry_at: datetime | None = None
    callback_at: datetime | None = None
    exit: ExitReason | None = None
    # The engagement activity kind that feeds scoring, if any.
    scoring_kind: str | None = None
    why: str = ""


def disposition_outcome(disposition: Disposition, channel: Channel, *, attempts: int,
                        budget: int, now: datetime,
                        callback_at: datetime | None = None) -> Outcome:
    """Decide what a recorded disposition does.

    - Busy: try again in 30 minutes, same step.
    - Call back at a time: a callback task for that hour replaces the cadence's next step
      until it is done (never offered before its hour).
    - Wrong number, not interested, meeting booked, qualified, disqualified: the enrollment
      ends with that reason.
    - Anything else moves the cadence on; a lead never reached after ``budget`` attempts is
      closed as unreachable.
    """
    counts = channel in ATTEMPT_CHANNELS
    spent = attempts + (1 if counts else 0)
    match disposition:
        case Disposition.BUSY:
            return Outcome(counts, advance=False, retry_at=now + BUSY_RETRY,
                           why="busy: try again in 30 minutes")
        case Disposition.CALL_BACK:
            when = callback_at or now + timedelta(hours=1)
            return Outcome(counts, contacted=True, advance=False, callback_at=when,
                           why=f"call back at {when.isoformat(timespec='minutes')}")
        case Disposition.WRONG_NUMBER:
            return Outcome(counts, exit=ExitReason.WRONG_NUMBER, why="wrong number")
        case Disposition.NOT_INTERESTED:
            return Outcome(counts, contacted=True, exit=ExitReason.NOT_INTERESTED,
                           scoring_kind="not_interested", why="not interested")
        case Disposition.MEETING_BOOKED:
            return Outcome(counts, contacted=True, exit=ExitReason.MEETING_BOOKED,
                           scoring_kind="meeting_booked", why="meeting booked")
        case Disposition.QUALIFIED:
            return Outcome(counts, contacted=True, exit=ExitReason.QUALIFIED, why="qualified")
        case Disposition.DISQUALIFIED:
            return Outcome(counts, contacted=True, exit=ExitReason.DISQUALIFIED,
                           why="disqualified")
        case Disposition.CONNECTED:
            return Outcome(counts, contacted=True, why="connected")
    # No answer, voicemail left, sent: the cadence moves on until the budget is spent.
    if spent >= budget:
        return Outcome(counts, exit=ExitReason.UNREACHABLE,
                       why=f"not reached after {spent} attempts")
    return Outcome(counts, why=f"{disposition.value.replace('_', ' ')}; attempt {spent} of "
                               f"{budget}")


# --- a returning rep's backlog -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backlog:
    """An overdue task of a returning rep, best first by ``rank``."""

    task_id: int
    bucket: int
    rank: float


@dataclass(slots=True)
class CatchUpPlan:
    """Which overdue tasks stay due today and which move to later working days."""

    today: list[int] = field(default_factory=list)
    later: dict[date, list[int]] = field(default_factory=dict)


def catch_up_plan(backlog: Sequence[Backlog], *, per_day: int, today: date,
                  calendar: Calendar) -> CatchUpPlan:
    """Spread a returning rep's overdue tasks over working days, ``per_day`` a day, best
    first, so the rep comes back to a day's work and not hundreds of overdue tasks."""
    ordered = sorted(backlog, key=lambda b: (b.bucket, -b.rank, b.task_id))
    plan = CatchUpPlan()
    day = next_working_day(today, calendar)
    for i in range(0, len(ordered), max(per_day, 1)):
        ids = [b.task_id for b in ordered[i:i + max(per_day, 1)]]
        if i == 0 and day == today:
            plan.today = ids
        else:
            plan.later[day] = ids
        day = next_working_day(day + timedelta(days=1), calendar)
    return plan
