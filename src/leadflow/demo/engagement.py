"""What demo leads did after they arrived, and how they ended: a history with planted truths.

Each lead gets a hidden intent drawn from who it is (industry, title, company size) and where it
came from (channel). Intent drives both what the lead does (classes, webinars, a paid
consultation, or only an email open) and whether it converts, so the scoring model has real
signal to learn and the calibration report something true to show. The drivers are listed in
:data:`DRIVERS` so tests can check the model recovers them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from leadflow.leads.models import ActivityKind, LeadStatus
from leadflow.scoring.rules import EngagementEvent

# The true effects on intent (log-odds scale), for tests and for the curious.
DRIVERS: dict[str, float] = {
    "industry: 教育 / 软件 (education, software)": 1.0,
    "title: decision maker": 0.7,
    "headcount 50–2000": 0.5,
    "channel: referral / paid consultation / user conference": 0.8,
    "channel: free gift": -1.4,
    "paid consultation after a community class": 1.5,
}
_GOOD_INDUSTRIES = ("教育", "软件/信息技术", "Education", "Software & IT")
_DECISION_WORDS = ("总监", "总经理", "CEO", "CTO", "CIO", "副总裁", "董事长", "创始人", "负责人",
                   "主任", "Director", "VP", "Head", "Founder")
_WARM_CHANNELS = ("referral", "paid_consultation", "user_conference")
_PAGES = ("/pricing", "/demo", "/case/retail", "/blog/lead-scoring", "/blog/crm-vs-excel", "/")


@dataclass(frozen=True, slots=True)
class PlantedLead:
    """What a demo lead did and where it stands now."""

    activities: list[EngagementEvent]
    status: LeadStatus


def intent(facts: dict[str, Any], rng: random.Random) -> float:
    """The lead's hidden intent: profile and channel effects plus noise."""
    z = rng.gauss(0.0, 1.0) - 0.6
    if facts.get("industry") in _GOOD_INDUSTRIES:
        z += DRIVERS["industry: 教育 / 软件 (education, software)"]
    title = str(facts.get("title") or "")
    if any(word in title for word in _DECISION_WORDS):
        z += DRIVERS["title: decision maker"]
    headcount = facts.get("headcount")
    if headcount is not None and 50 <= headcount <= 2000:
        z += DRIVERS["headcount 50–2000"]
    channel = facts.get("channel")
    if channel in _WARM_CHANNELS:
        z += DRIVERS["channel: referral / paid consultation / user conference"]
    elif channel == "gift":
        z += DRIVERS["channel: free gift"]
    return z


def plant(facts: dict[str, Any], created_at: datetime, now: datetime,
          rng: random.Random) -> PlantedLead:
    """Activities after ``created_at`` and a status as of ``now``, driven by intent.

    1. Intent from the profile and channel (see :data:`DRIVERS`) plus noise.
    2. Engagement events: more and warmer (classes, webinars, meetings) with higher intent;
       community-group leads go to classes, and some of them pay for a consultation.
    3. Conversion for leads older than two weeks, with the brief's A+ signal (paid after a
       class) as a strong driver; low-intent leads get disqualified or unsubscribe.
    """
    z = intent(facts, rng)
    age_days = max((now - created_at).total_seconds() / 86_400, 0.01)
    span = min(age_days, 60.0)
    activities: list[EngagementEvent] = []

    def at() -> datetime:
        return created_at + timedelta(days=rng.uniform(0, span))

    n_events = min(12, _poisson(rng, math.exp(0.2 + 0.55 * z)))
    warm = 1 / (1 + math.exp(-(z - 0.3)))
    for _ in range(n_events):
        r = rng.random()
        if r < 0.35 * (1 - warm) + 0.1:
            activities.append(EngagementEvent(ActivityKind.EMAIL_OPENED.value, at()))
        elif r < 0.55:
            page = rng.choice(_PAGES) if rng.random() < 0.5 + 0.3 * warm else "/"
            activities.append(EngagementEvent(ActivityKind.WEB_VISIT.value, at(), ref=page))
        elif r < 0.7:
            activities.append(EngagementEvent(ActivityKind.CONTENT_READ.value, at(),
                                              value=float(rng.randint(1, 12))))
        elif r < 0.82:
            activities.append(EngagementEvent(ActivityKind.EMAIL_CLICKED.value, at()))
        elif r < 0.92:
            activities.append(EngagementEvent(ActivityKind.WEBINAR_ATTENDED.value, at()))
        elif rng.random() < warm:
            activities.append(EngagementEvent(ActivityKind.MEETING_BOOKED.value, at()))
    classes = 0
    if facts.get("channel") == "community_group" or rng.random() < 0.05 * warm:
        classes = min(4, _poisson(rng, 1.0 + 1.5 * warm))
        activities += [EngagementEvent(ActivityKind.COMMUNITY_CLASS.value, at())
                       for _ in range(classes)]
    paid = (facts.get("channel") == "paid_consultation"
            or (classes > 0 and rng.random() < 0.1 + 0.4 * warm))
    if paid:
        activities.append(EngagementEvent(ActivityKind.PAID_CONSULTATION.value, at(), value=9.9))
    if facts.get("channel") == "gift":
        activities.append(EngagementEvent(ActivityKind.GIFT_CLAIMED.value, created_at))
    if z < -1.5 and rng.random() < 0.3:
        activities.append(EngagementEvent(ActivityKind.UNSUBSCRIBED.value, at()))
    conversion = -3.4 + 1.1 * z + (DRIVERS["paid consultation after a community class"]
                                   if paid and classes else 0.6 if paid else 0.0)
    status = LeadStatus.NEW
    if age_days > 14:
        if rng.random() < 1 / (1 + math.exp(-conversion)):
            status = LeadStatus.CONVERTED
        elif rng.random() < 0.35 - 0.1 * warm:
            status = LeadStatus.DISQUALIFIED
        else:
            status = rng.choice((LeadStatus.WORKING, LeadStatus.NURTURING,
                                 LeadStatus.QUALIFIED if warm > 0.6 else LeadStatus.WORKING))
    elif rng.random() < 0.5:
        status = LeadStatus.WORKING
    activities.sort(key=lambda a: a.occurred_at)
    return PlantedLead([a for a in activities if a.occurred_at <= now], status)


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: the means here are small.
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1
