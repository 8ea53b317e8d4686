"""Routing decisions: which rule, which rep, when a rep is available, protection and SLA times.

Pure: no session, no clock (``now`` is passed in), no randomness. Services load the state
into these small dataclasses, call the decisions and write the results with their reasons.

Fairness is stride scheduling: every rep of a team has a *pass*; the rep with the lowest
pass among the eligible ones is next and then advances by its stride (1 for round-robin,
1/weight for weighted). The team keeps a virtual time (the pass of the last choice); a rep
who joins, or returns after being ineligible, starts no further back than it, so nobody
gets a catch-up burst and nobody's rotation restarts when the team changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from leadflow.routing.models import Presence, Strategy
from leadflow.users.models import Segment

# Headcount bounds of the size segments (the brief's enterprise / mid / SMB split).
ENTERPRISE_MIN_HEADCOUNT = 1000
MID_MIN_HEADCOUNT = 100
# Hot leads with nobody eligible wait in the team's pool and are tried again this often.
RETRY_AFTER = timedelta(minutes=15)
HOT_GRADES = frozenset({"A+", "A"})


def segment_of(headcount: int | None) -> Segment | None:
    """The size segment of a company with ``headcount`` people (None when unknown)."""
    if headcount is None:
        return None
    if headcount >= ENTERPRISE_MIN_HEADCOUNT:
        return Segment.ENTERPRISE
    if headcount >= MID_MIN_HEADCOUNT:
        return Segment.MID
    return Segment.SMB


@dataclass(frozen=True, slots=True)
class RouteFacts:
    """What routing reads about one lead."""

    lead_id: int
    grade: str | None
    probability: float | None
    segment: Segment | None
    product_line: str | None
    region: str | None
    channel: str | None
    language: str | None
    tags: tuple[str, ...] = ()
    owner_id: int | None = None
    team_id: int | None = None
    arrived_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One routing rule as the decision sees it. Empty condition lists match anything."""

    id: int
    name: str
    team_id: int | None
    pool_id: int | None
    grades: tuple[str, ...] = ()
    min_probability: float | None = None
    segments: tuple[str, ...] = ()
    product_lines: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """The first rule that matched (None: no rule did) and why, in words."""

    rule: RuleSpec | None
    reason: str


def _miss(wanted: Sequence[str], have: str | None) -> bool:
    return bool(wanted) and (have is None or have not in wanted)


def rule_matches(rule: RuleSpec, facts: RouteFacts) -> bool:
    """Whether every condition of ``rule`` holds for the lead."""
    if _miss(rule.grades, facts.grade) or _miss(rule.segments, facts.segment):
        return False
    if _miss(rule.product_lines, facts.product_line) or _miss(rule.regions, facts.region):
        return False
    if _miss(rule.channels, facts.channel) or _miss(rule.languages, facts.language):
        return False
    if rule.tags and not set(rule.tags) & set(facts.tags):
        return False
    return rule.min_probability is None or (
        facts.probability is not None and facts.probability >= rule.min_probability
    )


def _conditions_text(rule: RuleSpec, facts: RouteFacts) -> str:
    parts = []
    if rule.grades:
        parts.append(f"grade {facts.grade} in {'/'.join(rule.grades)}")
    if rule.min_probability is not None:
        parts.append(f"probability {facts.probability:.0%} ≥ {rule.min_probability:.0%}")
    for label, wanted, have in (
        ("segment", rule.segments, facts.segment), ("product", rule.product_lines,
                                                     facts.product_line),
        ("region", rule.regions, facts.region), ("channel", rule.channels, facts.channel),
        ("language", rule.languages, facts.language),
    ):
        if wanted:
            parts.append(f"{label} {have}")
    if rule.tags:
        parts.append("tag " + "/".join(sorted(set(rule.tags) & set(facts.tags))))
    return ", ".join(parts) or "matches every lead"


def match_rule(rules: Iterable[RuleSpec], facts: RouteFacts) -> RuleMatch:
    """The first rule (in order) whose conditions all hold, with the reason in words."""
    for position, rule in enumerate(rules, start=1):
        if rule_matches(rule, facts):
            return RuleMatch(rule, f"rule {position} “{rule.name}”: "
                                   f"{_conditions_text(rule, facts)}")
    return RuleMatch(None, "no routing rule matched")


def match_rules(rules: Sequence[RuleSpec], leads: Iterable[RouteFacts]) -> list[RuleMatch]:
    """:func:`match_rule` for many leads; leads alike in every field a rule reads share one
    evaluation (a batch has few distinct profiles, and the reason text is the same)."""
    uses_probability = any(r.min_probability is not None for r in rules)
    memo: dict[tuple[object, ...], RuleMatch] = {}
    out = []
    for f in leads:
        key = (f.grade, f.probability if uses_probability else None, f.segment,
               f.product_line, f.region, f.channel, f.language, f.tags)
        found = memo.get(key)
        if found is None:
            found = memo[key] = match_rule(rules, f)
        out.append(found)
    return out


# --- availability -------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _calendar(code: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays(code, years=year)


def is_working_day(day: date, calendar: str | None) -> bool:
    """Whether ``day`` is a working day: public holidays off, make-up weekend days on."""
    if calendar is None:
        return day.weekday() < 5
    return bool(_calendar(calendar, day.year).is_working_day(day))


def holiday_name(day: date, calendar: str | None) -> str | None:
    """The public holiday on ``day`` in ``calendar``, if any."""
    if calendar is None:
        return None
    name = _calendar(calendar, day.year).get(day)
    return str(name) if name else None


@dataclass(frozen=True, slots=True)
class WorkingTime:
    """A rep's working hours (local minutes after midnight) and holiday calendar."""

    timezone: str = "Asia/Shanghai"
    start_minute: int | None = 9 * 60
    end_minute: int | None = 18 * 60
    calendar: str | None = "CN"

    def local(self, now: datetime) -> datetime:
        """``now`` on the rep's wall clock."""
        return now.astimezone(ZoneInfo(self.timezone))


def unavailable_reason(
    presence: Presence, hours: WorkingTime, absences: Iterable[tuple[datetime, datetime]],
    now: datetime,
) -> str | None:
    """Why the rep cannot take a new lead at ``now`` (None: available).

    1. The rep's own switch: away or offline.
    2. Leave or holiday booked as an absence.
    3. Around-the-clock reps (no hours) are otherwise available.
    4. A public holiday or a weekend that is not a make-up working day.
    5. Outside the working hours (a window past midnight wraps).
    """
    if presence != Presence.AVAILABLE:
        return str(presence)
    if any(start <= now < end for start, end in absences):
        return "on leave"
    if hours.start_minute is None or hours.end_minute is None:
        return None
    local = hours.local(now)
    if not is_working_day(local.date(), hours.calendar):
        return "holiday" if holiday_name(local.date(), hours.calendar) else "weekend"
    minute = local.hour * 60 + local.minute
    start, end = hours.start_minute, hours.end_minute
    inside = start <= minute < end if start <= end else (minute >= start or minute < end)
    return None if inside else "off hours"


def local_day(now: datetime, timezone: str) -> date:
    """The rep's calendar day at ``now``: daily capacities count per local day."""
    return now.astimezone(ZoneInfo(timezone)).date()


# --- rep selection ------------------------------------------------------------------------


@dataclass(slots=True)
class RepState:
    """One rep of a team as the chooser sees it; choosing updates it in place."""

    user_id: int
    name: str
    weight: float = 1.0
    capacity: dict[str, int] = field(default_factory=dict)
    today: Counter[str] = field(default_factory=Counter)
    open_leads: int = 0
    max_open: int | None = None
    languages: tuple[str, ...] = ()
    product_lines: tuple[str, ...] = ()
    unavailable: str | None = None
    pass_value: float = 0.0
    assigned: int = 0

    @property
    def stride(self) -> float:
        """How far the pass moves per lead: heavier reps move less, so come up more often."""
        return 1.0 / self.weight if self.weight > 0 else float("inf")


@dataclass(slots=True)
class TeamState:
    """A team's reps, strategy and fairness virtual time during one routing run."""

    team_id: int
    strategy: Strategy
    reps: list[RepState]
    virtual_pass: float = 0.0


@dataclass(frozen=True, slots=True)
class RepChoice:
    """The rep chosen for a lead (None: nobody eligible) and why."""

    user_id: int | None
    reason: str
    eligible: int
    skipped: dict[str, int]


def ineligible_reason(
    rep: RepState, grade: str | None, facts: RouteFacts, excluded: frozenset[int]
) -> str | None:
    """Why ``rep`` may not take this lead now (None: eligible)."""
    if rep.user_id in excluded:
        return "had it before"
    if rep.unavailable:
        return rep.unavailable
    if rep.weight <= 0:
        return "weight 0"
    if grade is not None and grade in rep.capacity and rep.today[grade] >= rep.capacity[grade]:
        return f"{grade} capacity full"
    if rep.max_open is not None and rep.open_leads >= rep.max_open:
        return "open-lead limit"
    if facts.language and rep.languages and facts.language not in rep.languages:
        return "language"
    if facts.product_line and rep.product_lines and facts.product_line not in rep.product_lines:
        return "product line"
    return None


def choose_rep(
    team: TeamState, facts: RouteFacts, *, excluded: frozenset[int] = frozenset()
) -> RepChoice:
    """Pick the rep for one lead and book it on the team state.

    1. Drop reps who are unavailable, at their daily capacity for the lead's grade, at
       their open-lead limit, lack the lead's language or product line, or had the lead
       before (a rejection or an SLA reroute); count why.
    2. Each remaining rep's pass is lifted to at least the team's virtual time (no
       catch-up burst after an absence or on joining; a no-op while everyone is eligible).
    3. Round-robin and weighted take the lowest pass; least-loaded takes the fewest open
       leads, then the lowest pass. Ties go to the lower user id (deterministic).
    4. The chosen rep's pass advances by its stride, its counters grow, and the virtual
       time moves to the pass it was chosen at.
    """
    grade = facts.grade
    skipped: Counter[str] = Counter()
    eligible: list[RepState] = []
    for rep in team.reps:
        # The common case inline (this runs for every rep of every lead of a batch);
        # anything unusual asks ineligible_reason, the one definition of eligibility.
        cap = rep.capacity.get(grade) if grade is not None else None
        if (rep.unavailable is None and rep.weight > 0 and not excluded
                and rep.max_open is None and not rep.languages and not rep.product_lines
                and (cap is None or rep.today[grade] < cap)):  # type: ignore[index]
            eligible.append(rep)
            continue
        why = ineligible_reason(rep, grade, facts, excluded)
        if why is None:
            eligible.append(rep)
        else:
            skipped[why] += 1
    if not eligible:
        return RepChoice(None, _nobody(len(team.reps), skipped), 0, dict(skipped))
    floor = team.virtual_pass
    for rep in eligible:
        rep.pass_value = max(rep.pass_value, floor)
    if team.strategy == Strategy.LEAST_LOADED:
        rep = min(eligible, key=lambda r: (r.open_leads, r.pass_value, r.user_id))
    else:
        rep = min(eligible, key=lambda r: (r.pass_value, r.user_id))
    reason = _why(team.strategy, rep, eligible, grade)
    team.virtual_pass = rep.pass_value
    rep.pass_value += rep.stride
    rep.assigned += 1
    rep.open_leads += 1
    if grade is not None:
        rep.today[grade] += 1
    if skipped:
        reason += "; skipped " + ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
    return RepChoice(rep.user_id, reason, len(eligible), dict(skipped))


def _nobody(total: int, skipped: Counter[str]) -> str:
    if total == 0:
        return "the team has no reps"
    return f"none of {total} reps eligible: " + ", ".join(
        f"{n} {why}" for why, n in sorted(skipped.items()))


def _why(strategy: Strategy, rep: RepState, eligible: list[RepState], grade: str | None) -> str:
    n = len(eligible)
    if strategy == Strategy.LEAST_LOADED:
        head = f"least loaded of {n} eligible reps ({rep.open_leads} open leads)"
    elif strategy == Strategy.WEIGHTED:
        share = rep.weight / sum(r.weight for r in eligible)
        head = f"weighted turn of {n} eligible reps (weight {rep.weight:g}, {share:.0%} share)"
    else:
        head = f"next in the round-robin of {n} eligible reps"
    if grade is not None and grade in rep.capacity:
        head += f"; {rep.today[grade] + 1} of {rep.capacity[grade]} {grade} leads today"
    return head


# --- protection (保护期), recycling, SLA ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Protection:
    """A pool's protection policy in days."""

    days: int
    extension_days: int
    max_days: int
    warn_days: int


def protected_until(owned_at: datetime, policy: Protection) -> datetime:
    """When a fresh ownership's protection ends without a follow-up."""
    return owned_at + timedelta(days=min(policy.days, policy.max_days))


def extended_protection(
    current: datetime | None, owned_at: datetime, touched_at: datetime, policy: Protection
) -> datetime:
    """The protection after a follow-up at ``touched_at``: extended, never past the maximum."""
    hard_stop = owned_at + timedelta(days=policy.max_days)
    wanted = touched_at + timedelta(days=policy.extension_days)
    base = current or protected_until(owned_at, policy)
    return min(max(base, wanted), hard_stop)


def warn_at(until: datetime, policy: Protection) -> datetime:
    """When the owner is warned that the lead will go back to the pool."""
    return until - timedelta(days=policy.warn_days)


def may_reclaim(last_lost_at: datetime | None, cooldown_days: int, now: datetime) -> bool:
    """Whether a previous owner may claim the lead again (the cooldown has passed)."""
    return last_lost_at is None or now >= last_lost_at + timedelta(days=cooldown_days)


def sla_due_at(arrived_at: datetime, assigned_at: datetime, minutes: int | None) -> datetime | None:
    """The first-touch deadline: ``minutes`` after arrival, or after the assignment when the
    lead waited (overnight, in triage) past that, so a rep is never late on arrival."""
    if minutes is None:
        return None
    target = timedelta(minutes=minutes)
    due = arrived_at + target
    return due if due > assigned_at else assigned_at + target


def sla_level(due: datetime, minutes: int, now: datetime) -> int:
    """0 before the deadline, 1 (escalate) after it, 2 (reroute) one more target later."""
    if now < due:
        return 0
    return 1 if now < due + timedelta(minutes=minutes) else 2


def mask_phone(phone: str | None) -> str | None:
    """A phone number as a pool shows it before the lead is claimed: ``138****5678`` for a
    mainland number (stored as +86…), ``+141****0123`` for others."""
    if not phone:
        return phone
    mainland = phone.startswith("+86")
    national = phone[3:] if mainland else phone.lstrip("+")
    prefix = "+" if phone.startswith("+") and not mainland else ""
    if len(national) <= 6:
        return prefix + "*" * len(national)
    head = 3 if len(national) <= 11 else len(national) - 8
    return prefix + national[:head] + "*" * (len(national) - head - 4) + national[-4:]
