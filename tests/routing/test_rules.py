"""Routing decisions without a database: rules, fairness, capacity, availability, protection."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.routing import rules
from leadflow.routing.models import Presence, Strategy
from leadflow.routing.rules import Protection, RepState, RouteFacts, RuleSpec, TeamState
from leadflow.users.models import Segment

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # Thursday 10:00 in Shanghai


def facts(grade: str | None = "A", **kw: object) -> RouteFacts:
    base: dict[str, object] = dict(lead_id=1, grade=grade, probability=0.4,
                                   segment=Segment.SMB, product_line="CRM", region="上海",
                                   channel="sem", language="zh")
    base.update(kw)
    return RouteFacts(**base)  # type: ignore[arg-type]


def team(n: int, strategy: Strategy = Strategy.ROUND_ROBIN, **rep: object) -> TeamState:
    return TeamState(1, strategy, [RepState(user_id=i + 1, name=f"rep{i + 1}", **rep)  # type: ignore[arg-type]
                                   for i in range(n)])


def route(t: TeamState, n: int, grade: str | None = "A") -> list[int | None]:
    return [rules.choose_rep(t, facts(grade)).user_id for _ in range(n)]


def test_first_matching_rule_wins_and_says_why() -> None:
    specs = [
        RuleSpec(1, "Gifts to nurture", None, 9, channels=("gift",)),
        RuleSpec(2, "Hot to sales", 3, None, grades=("A+", "A")),
        RuleSpec(3, "Everything else", 4, None),
    ]
    hot = rules.match_rule(specs, facts("A"))
    assert hot.rule is not None and hot.rule.id == 2
    assert "rule 2" in hot.reason and "grade A in A+/A" in hot.reason
    gift = rules.match_rule(specs, facts("A", channel="gift"))
    assert gift.rule is not None and gift.rule.id == 1
    cold = rules.match_rule(specs, facts("C"))
    assert cold.rule is not None and cold.rule.id == 3
    assert rules.match_rule(specs[:2], facts("D")).rule is None


def test_conditions_on_probability_segment_tags_and_language() -> None:
    rule = RuleSpec(1, "big", 1, None, min_probability=0.5, segments=("enterprise",),
                    tags=("vip", "kol"), languages=("en",))
    ok = facts(probability=0.6, segment=Segment.ENTERPRISE, tags=("kol",), language="en")
    assert rules.rule_matches(rule, ok)
    for change in ({"probability": 0.4}, {"probability": None}, {"segment": Segment.MID},
                   {"tags": ()}, {"language": "zh"}):
        assert not rules.rule_matches(rule, replace(ok, **change))  # type: ignore[arg-type]


def test_segment_bounds() -> None:
    assert rules.segment_of(None) is None
    assert rules.segment_of(99) == Segment.SMB
    assert rules.segment_of(100) == Segment.MID
    assert rules.segment_of(1000) == Segment.ENTERPRISE


@given(reps=st.integers(1, 12), leads=st.integers(0, 400))
def test_round_robin_spreads_within_one_lead(reps: int, leads: int) -> None:
    t = team(reps)
    counts = Counter(route(t, leads))
    ideal = leads / reps
    assert all(abs(counts[r.user_id] - ideal) < 1 for r in t.reps)


@settings(max_examples=60)
@given(weights=st.lists(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]), min_size=2, max_size=8),
       start=st.integers(0, 150))
def test_weighted_shares_hold_within_five_points_over_any_hundred(
    weights: list[float], start: int
) -> None:
    t = TeamState(1, Strategy.WEIGHTED,
                  [RepState(user_id=i + 1, name=str(i), weight=w) for i, w in enumerate(weights)])
    picks = route(t, start + 100)
    window = Counter(picks[start:])
    total = sum(weights)
    for i, w in enumerate(weights):
        assert abs(window[i + 1] / 100 - w / total) <= 0.05


def test_joining_rep_neither_resets_the_rotation_nor_gets_a_burst() -> None:
    t = team(4)
    route(t, 41)  # rep1 is one ahead of the others
    before = {r.user_id: r.assigned for r in t.reps}
    t.reps.append(RepState(user_id=9, name="new", pass_value=t.virtual_pass))
    picks = route(t, 50)
    counts = Counter(picks)
    # Over the next 50 leads everyone, the newcomer included, gets 10 ± 1.
    assert all(abs(counts[uid] - 10) <= 1 for uid in (1, 2, 3, 4, 9))
    # The newcomer never gets two in a row (no catch-up burst).
    assert all(not (a == b == 9) for a, b in pairwise(picks))
    assert before[1] == 11


def test_returning_rep_gets_no_catch_up_burst() -> None:
    t = team(3)
    away = t.reps[2]
    away.unavailable = "away"
    route(t, 30)
    away.unavailable = None
    picks = route(t, 6)
    assert picks.count(3) <= 3 and picks[:2] != [3, 3]


@given(cap=st.integers(0, 5), reps=st.integers(1, 5), leads=st.integers(0, 40))
def test_daily_capacity_is_never_exceeded(cap: int, reps: int, leads: int) -> None:
    t = team(reps, capacity={"A": cap})
    picks = route(t, leads)
    counts = Counter(p for p in picks if p is not None)
    assert all(n <= cap for n in counts.values())
    assert picks.count(None) == max(0, leads - cap * reps)


def test_least_loaded_prefers_fewest_open_leads_and_explains() -> None:
    t = team(3, Strategy.LEAST_LOADED, capacity={"A": 15})
    t.reps[0].open_leads, t.reps[1].open_leads, t.reps[2].open_leads = 9, 4, 6
    t.reps[1].today["A"] = 8
    choice = rules.choose_rep(t, facts("A"))
    assert choice.user_id == 2
    assert "least loaded of 3 eligible reps" in choice.reason
    assert "9 of 15 A leads today" in choice.reason


def test_skills_limits_and_exclusions_are_reasons() -> None:
    t = team(4)
    t.reps[0].languages = ("en",)
    t.reps[1].max_open, t.reps[1].open_leads = 5, 5
    t.reps[2].unavailable = "on leave"
    choice = rules.choose_rep(t, facts("B", language="zh"), excluded=frozenset({4}))
    assert choice.user_id is None
    assert choice.skipped == {"language": 1, "open-lead limit": 1, "on leave": 1,
                              "had it before": 1}
    assert "none of 4 reps eligible" in choice.reason


def test_availability_follows_presence_leave_hours_and_the_chinese_calendar() -> None:
    hours = rules.WorkingTime("Asia/Shanghai", 9 * 60, 18 * 60, "CN")
    available = Presence.AVAILABLE
    assert rules.unavailable_reason(available, hours, [], NOW) is None
    assert rules.unavailable_reason(Presence.AWAY, hours, [], NOW) == "away"
    leave = [(NOW - timedelta(days=1), NOW + timedelta(days=1))]
    assert rules.unavailable_reason(available, hours, leave, NOW) == "on leave"
    evening = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
    assert rules.unavailable_reason(available, hours, [], evening) == "off hours"
    national_day = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
    assert rules.unavailable_reason(available, hours, [], national_day) == "holiday"
    makeup_saturday = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)  # 调休: a working Saturday
    assert rules.unavailable_reason(available, hours, [], makeup_saturday) is None
    plain_saturday = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    assert rules.unavailable_reason(available, hours, [], plain_saturday) == "weekend"
    always = rules.WorkingTime("Asia/Shanghai", None, None, "CN")
    assert rules.unavailable_reason(available, always, [], national_day) is None
    night = rules.WorkingTime("Asia/Shanghai", 22 * 60, 6 * 60, None)
    assert rules.unavailable_reason(available, night, [], datetime(
        2026, 11, 26, 15, 0, tzinfo=UTC)) is None  # 23:00 local, inside a wrapped window


def test_capacity_counts_per_local_day() -> None:
    late_utc = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)  # already the 27th in Shanghai
    assert rules.local_day(late_utc, "Asia/Shanghai").day == 27
    assert rules.local_day(late_utc, "UTC").day == 26


@given(touches=st.lists(st.integers(0, 60 * 24 * 40), max_size=12))
def test_protection_extends_with_follow_ups_but_never_past_the_maximum(
    touches: list[int]
) -> None:
    policy = Protection(days=7, extension_days=5, max_days=20, warn_days=2)
    owned = NOW
    until = rules.protected_until(owned, policy)
    assert until == owned + timedelta(days=7)
    for minutes in sorted(touches):
        touched = owned + timedelta(minutes=minutes)
        new = rules.extended_protection(until, owned, touched, policy)
        assert new >= until or new == owned + timedelta(days=20)
        assert new <= owned + timedelta(days=20)
        until = new
    assert rules.warn_at(until, policy) == until - timedelta(days=2)


def test_reclaim_cooldown() -> None:
    assert rules.may_reclaim(None, 7, NOW)
    assert not rules.may_reclaim(NOW - timedelta(days=6), 7, NOW)
    assert rules.may_reclaim(NOW - timedelta(days=7), 7, NOW)


def test_sla_deadline_and_levels() -> None:
    arrived = NOW
    assert rules.sla_due_at(arrived, arrived + timedelta(seconds=1), 5) == arrived + \
        timedelta(minutes=5)
    overnight = arrived + timedelta(hours=10)
    assert rules.sla_due_at(arrived, overnight, 5) == overnight + timedelta(minutes=5)
    assert rules.sla_due_at(arrived, arrived, None) is None
    due = arrived + timedelta(minutes=5)
    assert rules.sla_level(due, 5, due - timedelta(seconds=1)) == 0
    assert rules.sla_level(due, 5, due) == 1
    assert rules.sla_level(due, 5, due + timedelta(minutes=5)) == 2


def test_phone_masking() -> None:
    assert rules.mask_phone("+8613812345678") == "138****5678"
    assert rules.mask_phone("+14155550123") == "+141****0123"
    assert rules.mask_phone("13812345678") == "138****5678"
    assert rules.mask_phone("12345") == "*****"
    assert rules.mask_phone(None) is None
