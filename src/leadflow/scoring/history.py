"""Synthetic conversion histories with planted truths.

The learned conversion model is judged on data whose true drivers are known: these generators
draw leads from a seeded ``numpy`` Generator, compute each lead's true conversion log-odds from
a handful of planted effects (main effects, a non-monotone sweet spot and channel × industry
interactions, so that tree models have something real to find), draw the outcome, and only
then blank some cells, as a CRM that did not record everything would.

Two schemas with different columns exercise the "any tabular history" path:

* ``"leads"``: a Chinese B2B/B2C lead history, target ``converted`` (0/1), id ``lead_id``;
* ``"saas"``: trial accounts of a SaaS product, target ``won`` ("won"/"lost"), id
  ``account_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from leadflow.errors import InvalidInput

SCHEMAS = ("leads", "saas")


@dataclass(frozen=True, eq=False)
class PlantedTruth:
    """What the generator planted, for tests and benchmarks to check a model against."""

    schema: str
    target: str
    id_column: str
    drivers: tuple[str, ...]  # columns with a planted effect, strongest first
    positive: dict[str, str]  # column -> a value planted to raise conversion strongly
    negative: dict[str, str]  # column -> a value planted to lower conversion strongly
    interactions: tuple[tuple[str, str], ...]
    nonlinear: tuple[str, ...]  # numeric columns with a non-monotone effect
    noise: tuple[str, ...]  # columns with no effect at all
    base_rate: float  # realised share of positives
    probability: np.ndarray = field(repr=False)  # true conversion probability per row


def planted_history(
    n: int, *, seed: int = 0, schema: str = "leads"
) -> tuple[pd.DataFrame, PlantedTruth]:
    """Generate ``n`` leads of ``schema`` with known conversion drivers.

    Deterministic for a given ``(n, seed, schema)``. Numeric columns are float64 with NaN for
    missing, text columns are strings with NaN for missing.
    """
    if n < 1:
        raise InvalidInput(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    if schema == "leads":
        return _leads(n, rng)
    if schema == "saas":
        return _saas(n, rng)
    raise InvalidInput(f"unknown schema {schema!r}; choose one of {', '.join(SCHEMAS)}")


def _choice(rng: np.random.Generator, values: list[str], p: list[float], n: int) -> np.ndarray:
    weights = np.asarray(p, dtype=float)
    return rng.choice(np.array(values, dtype=object), size=n, p=weights / weights.sum())


def _effect(column: np.ndarray, effects: dict[str, float]) -> np.ndarray:
    out = np.zeros(len(column))
    for value, effect in effects.items():
        out[column == value] = effect
    return out


def _intercept_for(logit: np.ndarray, rate: float) -> float:
    """The intercept that makes the mean true probability ``rate`` (bisection)."""
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(logit + mid)))) < rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _blank(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    """A copy of ``values`` with about ``share`` of its cells missing."""
    out = values.astype(float) if values.dtype.kind in "iub" else values.copy()
    out[rng.random(len(out)) < share] = np.nan
    return out


def _outcome(
    rng: np.random.Generator, logit: np.ndarray, rate: float
) -> tuple[np.ndarray, np.ndarray]:
    logit = logit + _intercept_for(logit, rate)
    probability = 1 / (1 + np.exp(-logit))
    return probability, (rng.random(len(logit)) < probability).astype(np.int64)


INDUSTRIES = ["教育", "软件", "金融", "制造", "零售", "医疗", "房地产", "物流", "餐饮", "其他"]
PROVINCES = ["广东", "浙江", "江苏", "北京", "上海", "山东", "四川", "湖北", "福建", "河南", "其他"]
TITLES = ["CEO", "总经理", "总监", "经理", "主管", "专员", "助理", "学生"]
CHANNELS = [
    "seo", "sem", "webinar", "community_group", "referral", "gift", "offline_event",
    "content_download",
]
PRODUCTS = ["CRM", "营销自动化", "客服系统", "数据分析", "私域运营"]
WEEKDAYS = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"]


def _leads(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, PlantedTruth]:
    """Leads of a Chinese sales team; true drivers listed in the returned truth.

    1. Industry 教育 and 软件 convert more; title seniority helps (学生 hardly ever buys).
    2. A paid consultation converts, much more so after at least one community class; each
       class (up to 4) and webinar (up to 3) helps a little on its own.
    3. Leads from the gift channel came for the gift: strongly negative.
    4. Headcount has a sweet spot of 50–500 (very small firms rarely buy): non-monotone.
    5. Interactions: finance via webinar and manufacturing via referral convert far better
       than channel and industry alone suggest, retail via SEM far worse; education buying
       private-domain operations (私域运营) and retail buying marketing automation fit the
       product; a senior title decides fast in a firm under 50 people and hardly at all in
       one over 1,000.
    6. Province, weekday, form version, signup hour and the WeChat openid are noise.
    """
    industry = _choice(rng, INDUSTRIES, [14, 12, 10, 14, 13, 8, 7, 7, 8, 7], n)
    province = _choice(rng, PROVINCES, [16, 13, 12, 10, 10, 8, 7, 6, 6, 6, 6], n)
    title = _choice(rng, TITLES, [5, 7, 13, 25, 15, 20, 10, 5], n)
    channel = _choice(rng, CHANNELS, [16, 16, 12, 14, 8, 12, 8, 14], n)
    product = _choice(rng, PRODUCTS, [30, 25, 15, 15, 15], n)
    headcount = np.maximum(1, np.round(rng.lognormal(np.log(80), 1.4, n)))
    community = np.minimum(8, rng.poisson(np.where(channel == "community_group", 2.0, 0.4)))
    webinars = np.minimum(5, rng.poisson(np.where(channel == "webinar", 1.0, 0.2)))
    clicks = np.minimum(30, rng.poisson(1.5, n))
    paid = (rng.random(n) < 1 / (1 + np.exp(-(-2.8 + 0.7 * community + 0.3 * webinars)))).astype(
        np.int64
    )

    senior = np.isin(title, ["CEO", "总经理", "总监"])
    logit = (
        _effect(industry, {"教育": 1.1, "软件": 0.9, "房地产": -0.4})
        + _effect(
            title,
            {"CEO": 1.0, "总经理": 0.9, "总监": 0.7, "经理": 0.35, "主管": 0.1, "专员": -0.3,
             "助理": -0.6, "学生": -1.6},
        )
        + _effect(channel, {"gift": -1.8, "referral": 0.5, "offline_event": 0.3,
                            "content_download": -0.2})
        + _effect(product, {"私域运营": 0.2})
        + 0.4 * paid
        + 1.5 * ((paid == 1) & (community >= 1))
        + 0.2 * np.minimum(community, 4)
        + 0.25 * np.minimum(webinars, 3)
        + 0.04 * np.minimum(clicks, 10)
        + np.select([headcount < 10, headcount < 50, headcount <= 500], [-0.9, 0.0, 1.0], -0.2)
        + 1.6 * ((channel == "webinar") & (industry == "金融"))
        + 1.5 * ((channel == "referral") & (industry == "制造"))
        - 1.4 * ((channel == "sem") & (industry == "零售"))
        + 1.3 * ((industry == "教育") & (product == "私域运营"))
        + 1.1 * ((industry == "零售") & (product == "营销自动化"))
        + np.where(senior & (headcount < 50), 0.7, np.where(senior & (headcount > 1000), -1.0, 0))
    )
    probability, converted = _outcome(rng, logit, 0.10)

    frame = pd.DataFrame(
        {
            "lead_id": [f"L{i:07d}" for i in range(1, n + 1)],
            "industry": _blank(rng, industry, 0.04),
            "headcount": _blank(rng, headcount, 0.12),
            "province": _blank(rng, province, 0.08),
            "title": _blank(rng, title, 0.07),
            "channel": _blank(rng, channel, 0.02),
            "product_interest": _blank(rng, product, 0.10),
            "community_classes": _blank(rng, community, 0.03),
            "webinar_attended": _blank(rng, webinars, 0.05),
            "email_clicks": _blank(rng, clicks, 0.06),
            "paid_consultation": paid,
            "signup_weekday": _blank(rng, _choice(rng, WEEKDAYS, [1] * 7, n), 0.05),
            "form_version": _blank(rng, _choice(rng, ["A", "B", "C"], [5, 3, 2], n), 0.05),
            "signup_hour": _blank(rng, rng.integers(0, 24, n).astype(float), 0.06),
            "wechat_openid": [f"o{v:015x}" for v in rng.integers(0, 2**60, n)],
            "converted": converted,
        }
    )
    truth = PlantedTruth(
        schema="leads",
        target="converted",
        id_column="lead_id",
        drivers=(
            "paid_consultation", "channel", "industry", "title", "headcount",
            "community_classes", "webinar_attended", "email_clicks", "product_interest",
        ),
        positive={"paid_consultation": "1", "industry": "教育"},
        negative={"channel": "gift", "title": "学生"},
        interactions=(
            ("channel", "industry"), ("industry", "product_interest"), ("title", "headcount"),
            ("paid_consultation", "community_classes"),
        ),
        nonlinear=("headcount",),
        noise=("province", "signup_weekday", "form_version", "signup_hour", "wechat_openid"),
        base_rate=float(converted.mean()),
        probability=probability,
    )
    return frame, truth


PLANS = ["free", "starter", "pro", "enterprise"]
COUNTRIES = ["CN", "SG", "US", "JP", "DE", "GB", "AU", "IN"]
SOURCES = ["organic", "partner", "ads", "outbound"]


def _saas(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, PlantedTruth]:
    """Trial accounts of a SaaS product; true drivers listed in the returned truth.

    1. Active trial days help, saturating after 10; each connected integration (up to 4)
       helps strongly.
    2. Plan: enterprise and pro trials win more, free sign-ups rarely.
    3. Support tickets are non-monotone: 1–3 mean an engaged buyer, 6 or more an unhappy one.
    4. Enterprise trials with more than 50 seats win even more (plan × seats interaction).
    5. Partner-sourced accounts win more; country and the name length are noise.
    """
    plan = _choice(rng, PLANS, [35, 30, 25, 10], n)
    seats = np.maximum(1, np.round(rng.lognormal(np.log(12), 1.2, n)))
    country = _choice(rng, COUNTRIES, [30, 12, 15, 10, 8, 8, 7, 10], n)
    source = _choice(rng, SOURCES, [40, 15, 30, 15], n)
    trial_days = rng.binomial(14, rng.beta(2, 3, n))
    integrations = np.minimum(10, rng.poisson(1.2, n))
    tickets = np.minimum(15, rng.poisson(1.3, n))

    logit = (
        0.25 * np.minimum(trial_days, 10)
        + 0.45 * np.minimum(integrations, 4)
        + _effect(plan, {"free": -0.9, "pro": 0.5, "enterprise": 1.0})
        + np.select([tickets == 0, tickets <= 3, tickets < 6], [0.0, 0.5, 0.0], -0.9)
        + 0.8 * ((plan == "enterprise") & (seats > 50))
        + _effect(source, {"partner": 0.6, "outbound": -0.2})
    )
    probability, won = _outcome(rng, logit, 0.20)

    frame = pd.DataFrame(
        {
            "account_id": [f"ACC-{i:06d}" for i in range(1, n + 1)],
            "plan": plan,
            "seats": _blank(rng, seats, 0.08),
            "country": _blank(rng, country, 0.05),
            "signup_source": _blank(rng, source, 0.04),
            "trial_days_active": trial_days.astype(float),
            "integrations_connected": _blank(rng, integrations, 0.03),
            "support_tickets": tickets.astype(float),
            "company_name_length": rng.integers(2, 30, n).astype(float),
            "won": np.where(won == 1, "won", "lost"),
        }
    )
    truth = PlantedTruth(
        schema="saas",
        target="won",
        id_column="account_id",
        drivers=(
            "trial_days_active", "integrations_connected", "plan", "support_tickets",
            "seats", "signup_source",
        ),
        positive={"plan": "enterprise"},
        negative={"plan": "free"},
        interactions=(("plan", "seats"),),
        nonlinear=("support_tickets",),
        noise=("country", "company_name_length"),
        base_rate=float(won.mean()),
        probability=probability,
    )
    return frame, truth
