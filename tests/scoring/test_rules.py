"""Scoring decisions: conditions, fit, engagement decay and caps, grades, overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.scoring import rules
from leadflow.scoring.rules import EngagementEvent, KindSums
from leadflow.scoring.schemas import (
    ActivityPoints,
    Condition,
    EngagementConfig,
    FitConfig,
    FitRule,
    GradingConfig,
    Override,
    RulesetDocument,
)
from leadflow.scoring.service import default_document

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
KINDS = ["email_opened", "web_visit", "community_class", "unsubscribed", "content_read"]

values = st.one_of(
    st.none(), st.just(""), st.floats(allow_nan=True, allow_infinity=False, width=32),
    st.integers(-10, 5000), st.sampled_from(["教育", "Education", " 软件 ", "CEO", "销售总监"]),
    st.lists(st.sampled_from(["高意向", "价格敏感", "VIP"]), max_size=3),
)
conditions = st.one_of(
    st.builds(Condition, field=st.just("x"), op=st.sampled_from(["eq", "ne"]),
              value=st.sampled_from(["教育", "education", "100", "CEO"])),
    st.builds(Condition, field=st.just("x"), op=st.sampled_from(["in", "not_in", "contains"]),
              value=st.lists(st.sampled_from(["教育", "软件", "总监", "vip", "高意向"]),
                             min_size=1, max_size=3)),
    st.builds(Condition, field=st.just("x"), op=st.sampled_from(["gte", "lte"]),
              value=st.integers(-5, 3000)),
    st.builds(Condition, field=st.just("x"), op=st.just("between"),
              value=st.tuples(st.integers(0, 100), st.integers(100, 3000)).map(list)),
    st.builds(Condition, field=st.just("x"), op=st.sampled_from(["present", "missing"])),
)


@given(cond=conditions, column=st.lists(values, min_size=1, max_size=30))
@settings(max_examples=300, deadline=None)
def test_batch_condition_agrees_with_one_lead(cond: Condition, column: list[object]) -> None:
    series = pd.Series(column, dtype=object)
    mask = rules.condition_mask(cond, series, len(series))
    assert mask.tolist() == [rules.condition_holds(cond, v) for v in column]


def test_condition_semantics() -> None:
    industry = Condition(field="industry", op="in", value=["教育", "Software"])
    assert rules.condition_holds(industry, " software ")
    assert not rules.condition_holds(industry, "金融")
    assert not rules.condition_holds(industry, None)
    size = Condition(field="headcount", op="between", value=[50, 500])
    assert rules.condition_holds(size, 50) and rules.condition_holds(size, "500")
    assert not rules.condition_holds(size, 501) and not rules.condition_holds(size, None)
    title = Condition(field="title", op="contains", value=["总监", "director"])
    assert rules.condition_holds(title, "销售总监") and rules.condition_holds(title, "Sales Director")
    tags = Condition(field="tags", op="in", value=["高意向"])
    assert rules.condition_holds(tags, ["价格敏感", "高意向"]) and not rules.condition_holds(tags, [])
    assert rules.condition_holds(Condition(field="x", op="not_in", value=["a"]), None)
    assert rules.condition_holds(Condition(field="x", op="missing"), "  ")


def test_condition_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="number"):
        Condition(field="headcount", op="gte", value="many")
    with pytest.raises(ValueError, match="low"):
        Condition(field="headcount", op="between", value=[500, 50])
    with pytest.raises(ValueError, match="non-empty"):
        Condition(field="industry", op="in", value=[])


fit_rules = st.lists(
    st.builds(FitRule, field=st.sampled_from(["industry", "headcount", "title"]),
              op=st.just("present"), points=st.floats(-50, 50)),
    max_size=6,
)


@given(rule_list=fit_rules, industry=st.sampled_from([None, "教育"]),
       headcount=st.sampled_from([None, 120]), title=st.sampled_from([None, "CEO"]))
def test_fit_is_the_clamped_sum_of_hits(
    rule_list: list[FitRule], industry: str | None, headcount: int | None, title: str | None
) -> None:
    config = FitConfig(rules=rule_list, max=60)
    facts = {"industry": industry, "headcount": headcount, "title": title}
    fit, reasons = rules.fit_score(config, facts)
    hits = [r for r in rule_list if facts[r.field] is not None]
    expected = min(max(sum(r.points for r in hits), 0), 60) / 60 * 100
    assert fit == pytest.approx(expected)
    assert len(reasons) == len(hits)
    assert 0 <= fit <= 100
    frame = pd.DataFrame([facts])
    assert rules.fit_scores(config, frame)[0] == pytest.approx(fit)


@given(age=st.floats(0, 3650), half_life=st.floats(0.5, 365))
def test_decay_halves_every_half_life(age: float, half_life: float) -> None:
    now = rules.decay(age, half_life)
    later = rules.decay(age + half_life, half_life)
    assert later == pytest.approx(now / 2, rel=1e-9, abs=1e-300)
    assert 0 < now <= 1 or now == 0


def test_decay_counts_future_events_as_now() -> None:
    assert rules.decay(-3, 14) == 1.0


def _config(cap: float | None = 10, half_life: float = 14) -> EngagementConfig:
    return EngagementConfig(
        half_life_days=half_life, max_total=100, min_total=-50,
        activities={
            "email_opened": ActivityPoints(points=1, cap=5),
            "web_visit": ActivityPoints(points=2, cap=cap, pages={"/pricing": 8}),
            "community_class": ActivityPoints(points=12, cap=36),
            "unsubscribed": ActivityPoints(points=-30, cap=30),
            "content_read": ActivityPoints(points=1, per_value=True, cap=10),
        },
    )


events_strategy = st.lists(
    st.tuples(st.sampled_from(KINDS), st.floats(-2, 400), st.one_of(st.none(), st.floats(0, 60)),
              st.sampled_from([None, "/pricing", "/blog/x", "/PRICING?utm=1"])),
    max_size=40,
)


@given(events=events_strategy, half_life=st.floats(1, 60))
@settings(max_examples=200, deadline=None)
def test_engagement_is_capped_and_batch_agrees(
    events: list[tuple[str, float, float | None, str | None]], half_life: float
) -> None:
    config = _config(half_life=half_life)
    one = [EngagementEvent(k, NOW - timedelta(days=age), v, r) for k, age, v, r in events]
    total, reasons, counts = rules.engagement_score(config, one, NOW)
    assert config.min_total <= total <= config.max_total
    for reason in reasons:
        cap = config.activities[reason.key].cap
        assert cap is None or abs(reason.points) <= cap + 1e-9
    assert sum(counts.values()) == len(events)
    # The batch path gets per-kind sums of decayed event points (the database adds them up).
    sums: dict[str, float] = {}
    for e in one:
        rule = config.activities[e.kind]
        age = (NOW - e.occurred_at).total_seconds() / 86_400
        sums[e.kind] = sums.get(e.kind, 0.0) + rules.event_points(rule, e.value, e.ref) \
            * rules.decay(age, config.half_life_days)
    arrays = KindSums(
        row=np.zeros(len(sums), dtype=np.int64),
        kind=np.array(list(sums), dtype=object),
        count=np.array([counts[k] for k in sums], dtype=np.int64),
        points=np.array(list(sums.values()), dtype=float),
    )
    batch, by_kind = rules.engagement_scores(config, arrays, 1)
    assert batch[0] == pytest.approx(total, abs=1e-9)
    assert {k: int(v[0]) for k, v in by_kind.items()} == {k: counts[k] for k in sums}


def test_engagement_decays_and_pages_score_more() -> None:
    config = _config()
    fresh = [EngagementEvent("community_class", NOW)]
    old = [EngagementEvent("community_class", NOW - timedelta(days=14))]
    assert rules.engagement_score(config, fresh, NOW)[0] == pytest.approx(12)
    assert rules.engagement_score(config, old, NOW)[0] == pytest.approx(6)
    pricing = [EngagementEvent("web_visit", NOW, ref="/pricing")]
    blog = [EngagementEvent("web_visit", NOW, ref="/blog")]
    assert rules.engagement_score(config, pricing, NOW)[0] == 8
    assert rules.engagement_score(config, blog, NOW)[0] == 2
    reading = [EngagementEvent("content_read", NOW, value=7)]
    assert rules.engagement_score(config, reading, NOW)[0] == 7
    opens = [EngagementEvent("email_opened", NOW)] * 40
    assert rules.engagement_score(config, opens, NOW)[0] == 5  # the cap, not 40


def test_engagement_reasons_read_like_sentences() -> None:
    events = [EngagementEvent("community_class", NOW)] * 3
    _, reasons, _ = rules.engagement_score(_config(), events, NOW)
    assert reasons[0].text == "attended 3 community classes (+36)"


@given(fit=st.floats(0, 100), engagement=st.floats(-50, 100),
       percentile=st.one_of(st.none(), st.floats(0, 100)))
def test_combined_score_stays_in_range_and_batch_agrees(
    fit: float, engagement: float, percentile: float | None
) -> None:
    document = default_document()
    score = rules.combine(document, fit, engagement, percentile)
    assert 0 <= score <= 100
    arr = rules.combine_array(document, np.array([fit]), np.array([engagement]),
                              None if percentile is None else np.array([percentile]))
    assert arr[0] == pytest.approx(score)


def test_cold_start_uses_rules_alone() -> None:
    document = default_document()
    assert rules.combine(document, 80, 40, None) == pytest.approx(
        (0.5 * 80 + 0.5 * 40) / 1.0)
    assert rules.combine(document, 80, 40, 0.0) < rules.combine(document, 80, 40, None)


@given(score=st.floats(0, 100))
def test_grades_follow_thresholds(score: float) -> None:
    grading = GradingConfig()
    grade = rules.grade_for_score(grading, score)
    rank = rules.grades_for_scores(grading, np.array([score]))[0]
    assert ("A+", "A", "B", "C", "D")[rank] == grade
    if score >= grading.thresholds["A+"]:
        assert grade == "A+"
    if score < grading.thresholds["C"]:
        assert grade == "D"


def test_thresholds_must_fall() -> None:
    with pytest.raises(ValueError, match="fall"):
        GradingConfig(thresholds={"A+": 50, "A": 60, "B": 40, "C": 20})


def test_brief_overrides_paid_consultation_and_gift() -> None:
    document = default_document()
    student = {"industry": "教育", "channel": "community_group"}
    events = [EngagementEvent("community_class", NOW - timedelta(days=10)),
              EngagementEvent("community_class", NOW - timedelta(days=3)),
              EngagementEvent("paid_consultation", NOW, value=9.9)]
    decision = rules.decide(document, student, events, NOW)
    assert decision.grade == "A+" and decision.is_mql
    assert decision.override == "Paid consultation after a community course"
    assert decision.reasons[0].source == "override"
    # A perfect-fit profile that only claimed a gift is capped at C.
    gift = {"industry": "软件/信息技术", "headcount": 300, "title": "CEO", "province": "上海",
            "product_interest": "CRM", "phone": "+8613800000000", "email": "a@b.cn",
            "channel": "gift"}
    decision = rules.decide(document, gift, [EngagementEvent("captured", NOW)], NOW)
    assert decision.grade == "C" and not decision.is_mql
    assert decision.fit > 60  # fit stays visible beside the capped grade


def test_batch_overrides_match_one_lead() -> None:
    document = default_document()
    frame = pd.DataFrame({
        "channel": ["gift", "gift", "seo"],
        "engagement": [5.0, 50.0, 5.0],
        "activity.community_class": [0, 0, 2],
        "activity.paid_consultation": [0, 0, 1],
        "activity.not_interested": [0, 0, 0],
    })
    ranks = rules.apply_overrides_array(document.grading.overrides, frame,
                                        np.array([0, 0, 4], dtype=np.int8))
    expected = [rules.apply_overrides(document.grading.overrides, row, g)[0]
                for row, g in zip(frame.to_dict("records"), ["A+", "A+", "D"], strict=True)]
    assert [("A+", "A", "B", "C", "D")[r] for r in ranks] == expected == ["C", "A+", "A+"]


def test_first_matching_override_wins() -> None:
    overrides = [
        Override(label="first", grade="B", when=[Condition(field="x", op="present")]),
        Override(label="second", grade="A+", when=[Condition(field="x", op="present")]),
    ]
    grade, chosen = rules.apply_overrides(overrides, {"x": 1}, "D")
    assert (grade, chosen.label if chosen else None) == ("B", "first")


def test_default_ruleset_round_trips_through_yaml() -> None:
    from leadflow.scoring.service import parse_ruleset_yaml, ruleset_yaml

    document = default_document()
    again = parse_ruleset_yaml(ruleset_yaml(document))
    assert again == document
    assert isinstance(again, RulesetDocument)


numeric_columns = st.lists(
    st.one_of(st.none(), st.just(float("nan")), st.floats(-100, 5000), st.integers(-100, 5000)),
    min_size=1, max_size=30,
)


@given(cond=conditions, column=numeric_columns)
@settings(max_examples=300, deadline=None)
def test_batch_condition_on_numbers_agrees_with_one_lead(
    cond: Condition, column: list[float | int | None]
) -> None:
    series = pd.Series(column, dtype="float64")
    mask = rules.condition_mask(cond, series, len(series))
    assert mask.tolist() == [rules.condition_holds(cond, v) for v in series.tolist()]
