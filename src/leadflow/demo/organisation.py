"""A realistic demo organisation: teams, people, campaigns and six months of captured leads.

``leadflow demo`` (and ``make run``) call :func:`build_demo` on an empty, migrated database.
Everything goes through the domain services (users, campaigns, enrichment, capture), so the
demo shows what the product does with real-looking input: leads arrive from every channel,
the same people come back through several campaigns and are merged, companies are enriched
from the firmographic table.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from leadflow import clock
from leadflow.campaigns import service as campaigns_service
from leadflow.campaigns.models import Campaign, Channel
from leadflow.campaigns.schemas import CampaignCreate
from leadflow.cleaning.enrich import load_firmographics
from leadflow.cleaning.rules import MatchThresholds
from leadflow.config import get_settings
from leadflow.db import bulk_insert, session_scope
from leadflow.demo import cadences as demo_cadences
from leadflow.demo import routing as demo_routing
from leadflow.demo.engagement import plant
from leadflow.demo.generator import (
    DAY_S,
    CompanyPool,
    GeneratedLead,
    bad_rows,
    generate_leads,
    staff_person,
    write_firmographics,
)
from leadflow.errors import Conflict
from leadflow.leads.capture import CaptureResult, IncomingRecord, capture_batch
from leadflow.leads.models import Activity, Lead, LeadStatus
from leadflow.scoring import jobs as scoring_jobs
from leadflow.scoring import totals as scoring_totals
from leadflow.users import service as users_service
from leadflow.users.models import Role, Segment, TeamKind, User

ADMIN_EMAIL = "admin@leadflow.local"
DEMO_PASSWORD = "leadflow-demo"
STAFF_DOMAIN = "leadflow.local"
HISTORY_DAYS = 180
CHUNK_SIZE = 5000
_LOCAL_TZ = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True, slots=True)
class TeamSpec:
    """A team of the demo organisation and how many people of which role it has."""

    name: str
    kind: TeamKind
    segment: Segment | None
    product_line: str | None
    members: int
    member_role: Role


# 售前转化团队 nurtures; sales teams split by segment and product line; 运营中台 owns the data.
TEAMS: tuple[TeamSpec, ...] = (
    TeamSpec("售前转化团队", TeamKind.PRESALES, None, None, 6, Role.PRESALES),
    TeamSpec("大客户销售部·CRM", TeamKind.SALES, Segment.ENTERPRISE, "CRM", 3, Role.REP),
    TeamSpec("大客户销售部·BI", TeamKind.SALES, Segment.ENTERPRISE, "BI", 3, Role.REP),
    TeamSpec("中型客户销售部·CRM", TeamKind.SALES, Segment.MID, "CRM", 4, Role.REP),
    TeamSpec("中型客户销售部·BI", TeamKind.SALES, Segment.MID, "BI", 4, Role.REP),
    TeamSpec("中小企业电销一组", TeamKind.SALES, Segment.SMB, "CRM", 5, Role.REP),
    TeamSpec("中小企业电销二组", TeamKind.SALES, Segment.SMB, "BI", 5, Role.REP),
    TeamSpec("运营中台", TeamKind.OPS, None, None, 1, Role.ANALYST),
)


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """A demo campaign: window in days before today, cost in CNY, and its share of leads."""

    name: str
    channel: Channel
    product_line: str | None
    topic: str
    cost: int
    start_days_ago: int
    days: int
    weight: float
    source: str

    def window(self, today: date) -> tuple[date, date]:
        """First and last day of the campaign."""
        starts = today - timedelta(days=self.start_days_ago)
        return starts, starts + timedelta(days=self.days - 1)


# Every channel at least once; always-on channels run the whole six months, events a day or
# two. Weights are each campaign's share of the leads: SEM and gifts bring volume, a paid
# consultation few but good ones (seed 000).
CAMPAIGNS: tuple[CampaignSpec, ...] = (
    CampaignSpec("百度SEO自然流量", Channel.SEO, None, "官网自然搜索", 30_000, 180, 180, 10,
                 "web-form"),
    CampaignSpec("百度搜索推广·CRM关键词", Channel.SEM, "CRM", "CRM系统", 180_000, 180, 180, 14,
                 "web-form"),
    CampaignSpec("必应搜索推广·BI", Channel.SEM, "BI", "BI数据分析", 60_000, 120, 120, 5,
                 "web-form"),
    CampaignSpec("白皮书下载《线索管理实战》", Channel.CONTENT, "CRM", "线索管理", 15_000, 150,
                 120, 6, "web-form"),
    CampaignSpec("公众号专栏: 销售数据化管理", Channel.CONTENT, "BI", "销售数据化", 8_000, 180,
                 180, 4, "web-form"),
    CampaignSpec("直播: 把线索转化率做到10%", Channel.WEBINAR, "CRM", "线索转化", 5_000, 95, 1,
                 3, "web-form"),
    CampaignSpec("Webinar: Sales Engagement Cadences", Channel.WEBINAR, "CRM", "cadences",
                 3_000, 40, 1, 2, "web-form"),
    CampaignSpec("上海数字化营销沙龙", Channel.OFFLINE_EVENT, "CRM", "数字化营销", 60_000, 130, 1,
                 3, "file-import"),
    CampaignSpec("北京行业峰会展位", Channel.OFFLINE_EVENT, "BI", "行业峰会", 120_000, 25, 2, 4,
                 "file-import"),
    CampaignSpec("深圳CIO闭门研讨会", Channel.SEMINAR, "BI", "数据平台选型", 45_000, 70, 1, 1.5,
                 "file-import"),
    CampaignSpec("年度用户大会 2026", Channel.USER_CONFERENCE, None, "用户大会", 350_000, 55, 2,
                 5, "file-import"),
    CampaignSpec("销售管理社群训练营", Channel.COMMUNITY_GROUP, "CRM", "社群课程", 20_000, 160,
                 150, 5, "wechat"),
    CampaignSpec("老客户转介绍计划", Channel.REFERRAL, None, "转介绍奖励", 25_000, 180, 180, 2,
                 "api"),
    CampaignSpec("9.9元销售诊断付费咨询", Channel.PAID_CONSULTATION, "CRM", "付费咨询", 12_000,
                 100, 90, 2, "web-form"),
    CampaignSpec("留资领取免费保险赠品", Channel.GIFT, None, "赠品", 40_000, 150, 60, 8,
                 "web-form"),
    CampaignSpec("抖音/视频号短视频", Channel.SOCIAL, "CRM", "短视频", 50_000, 120, 120, 6, "api"),
    CampaignSpec("小红书种草笔记", Channel.SOCIAL, "BI", "种草", 20_000, 60, 60, 2, "api"),
    CampaignSpec("EDM: 季度产品更新", Channel.EMAIL, None, "产品更新", 3_000, 90, 3, 2,
                 "web-form"),
    CampaignSpec("渠道伙伴联合推广", Channel.PARTNER, "BI", "伙伴联合营销", 30_000, 140, 120, 3,
                 "file-import"),
    CampaignSpec("官网在线咨询", Channel.OTHER, None, "在线咨询", 0, 180, 180, 3, "web-form"),
)

# Share of leads by local hour: people fill in forms in office hours and in the evening.
_HOUR_WEIGHTS = (1, 0.5, 0.3, 0.2, 0.2, 0.3, 1, 2, 4, 7, 8, 8, 6, 6, 8, 8, 7, 6, 4, 4, 5, 5, 4, 2)


def build_demo(*, leads: int, seed: int, console: Console | None) -> dict[str, object]:
    """Fill the current (migrated, empty) database with a demo organisation.

    1. Refuse when the demo admin exists: the demo is for an empty database.
    2. Teams, users (admin, managers, one lead per team, reps, marketers, an analyst; all with
       the demo password), campaigns on every channel with costs and dates over six months.
    3. Firmographics of the generated company pool, loaded like ``leadflow enrich load``.
    4. ``leads`` generated records (10% of them duplicates, plus a few invalid rows), each
       given a campaign by weight and a time inside its window, captured in chronological
       chunks of one campaign and week (at most 5,000 records, one transaction each) with
       ``now`` at the chunk's last record, so leads are created over the past six months.
    """
    started = time.perf_counter()
    now = clock.now()
    rng = random.Random(seed)
    with session_scope() as session:
        if session.scalar(select(User.id).where(User.email == ADMIN_EMAIL)) is not None:
            raise Conflict(
                f"the demo needs an empty database, but {ADMIN_EMAIL} already exists; "
                "point LEADFLOW_DATABASE_URL at a new database"
            )
    pool = CompanyPool.generate(max(200, min(50_000, leads // 4)), seed)
    with _progress(console) as progress:
        setup = progress.add_task("organisation", total=4)
        with session_scope() as session:
            teams, emails, logins = _create_people(session, rng, now, progress, setup)
            campaign_ids = _create_campaigns(session, now)
            progress.advance(setup)
            companies = _load_pool(session, pool, now)
            progress.advance(setup)
        batches = _schedule(leads, seed=seed, pool=pool, now=now, rng=rng)
        total = sum(len(b.records) for b in batches)
        capture = progress.add_task("leads", total=total)
        counts = CaptureResult()
        thresholds = MatchThresholds(merge=get_settings().match_threshold)
        for batch in batches:
            with session_scope() as session:
                result = capture_batch(
                    session=session, records=batch.records, source=batch.spec.source,
                    campaign_id=campaign_ids[batch.spec.name], now=batch.now,
                    thresholds=thresholds,
                )
            counts.created += result.created
            counts.merged += result.merged
            counts.rejects.extend(result.rejects)
            progress.advance(capture, len(batch.records))
        engaged = progress.add_task("engagement", total=1)
        activities, statuses = _plant_engagement(rng, now)
        progress.advance(engaged)
        scoring = progress.add_task("scoring", total=2)
        model_id = _score(now)
        progress.advance(scoring, 2)
        routed = progress.add_task("routing", total=1)
        demo_routing.configure(teams=teams, now=now, rng=rng)
        demo_cadences.configure(now=now)
        routing = demo_routing.route_recent(now=now, rng=rng)
        cadences = demo_cadences.plan_today(now=now)
        progress.advance(routed)
    return {
        "teams": len(teams),
        "users": len(emails),
        "campaigns": len(campaign_ids),
        "companies": companies,
        "records": total,
        "leads_created": counts.created,
        "merged": counts.merged,
        "rejected": len(counts.rejects),
        "activities": activities,
        "statuses": statuses,
        "model_id": model_id,
        "routing": routing,
        "cadences": cadences,
        "admin_email": ADMIN_EMAIL,
        "admin_password": DEMO_PASSWORD,
        "sample_logins": logins,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _plant_engagement(rng: random.Random, now: datetime) -> tuple[int, dict[str, int]]:
    """Give every lead what it did after arriving and how it ended (see demo.engagement)."""
    with session_scope() as session:
        rows = session.execute(
            select(Lead.id, Lead.created_at, Lead.industry, Lead.title, Lead.headcount,
                   Campaign.channel)
            .outerjoin(Campaign, Campaign.id == Lead.campaign_id)
            .where(Lead.status != LeadStatus.MERGED).order_by(Lead.id)
        ).all()
        activities: list[dict[str, object]] = []
        statuses: dict[str, list[int]] = defaultdict(list)
        for lead_id, created_at, industry, title, headcount, channel in rows:
            facts = {"industry": industry, "title": title, "headcount": headcount,
                     "channel": channel}
            planted = plant(facts, created_at, now, rng)
            statuses[planted.status.value].append(lead_id)
            activities += [
                {"lead_id": lead_id, "kind": a.kind, "occurred_at": a.occurred_at,
                 "summary": "", "detail": {}, "value": a.value, "ref": a.ref}
                for a in planted.activities
            ]
        bulk_insert(session, Activity.__table__, activities)  # type: ignore[arg-type]
        scoring_totals.forget(session=session)  # events added without a re-score
        for status, ids in statuses.items():
            if status != LeadStatus.NEW.value:
                session.execute(update(Lead).where(Lead.id.in_(ids)).values(status=status))
    return len(activities), {k: len(v) for k, v in statuses.items()}


def _score(now: datetime) -> int | None:
    """Train the model on the demo's history (when it has enough outcomes), then grade all."""
    model_id = None
    # A small demo stays on the rules, like a new organisation.
    with contextlib.suppress(scoring_jobs.NotEnoughHistory):
        model_id = scoring_jobs.train_from_database(now=now).id
    scoring_jobs.rescore_all(now=now)
    return model_id


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, disable=console is None,
    )


def _create_people(
    session: Session, rng: random.Random, now: datetime, progress: Progress, task: TaskID
) -> tuple[dict[str, int], list[str], dict[str, str]]:
    """Teams and users: team ids by name, every user's email, and one login per role."""
    emails: list[str] = []
    logins: dict[str, str] = {}

    def person(role: Role, team_id: int | None, *, english: bool | None = None,
               name: str | None = None, email: str | None = None) -> None:
        if english is None:
            english = rng.random() < 0.25
        if name is None or email is None:
            name, local = staff_person(rng, english=english)
            email = f"{local}@{STAFF_DOMAIN}"
            n = 2
            while email in emails:
                email = f"{local}{n}@{STAFF_DOMAIN}"
                n += 1
        users_service.create_user(
            session=session, email=email, name=name, role=role, password=DEMO_PASSWORD,
            now=now, team_id=team_id, locale="en" if english else "zh",
        )
        emails.append(email)
        logins.setdefault(str(role), email)

    person(Role.ADMIN, None, english=True, name="Admin", email=ADMIN_EMAIL)
    for _ in range(2):
        person(Role.MANAGER, None)
    teams: dict[str, int] = {}
    for spec in TEAMS:
        team = users_service.create_team(
            session=session, name=spec.name, kind=spec.kind, now=now, segment=spec.segment,
            product_line=spec.product_line,
        )
        teams[spec.name] = team.id
        person(Role.TEAM_LEAD, team.id)
        for _ in range(spec.members):
            person(spec.member_role, team.id)
    progress.advance(task)
    for _ in range(2):
        person(Role.MARKETER, None)
    progress.advance(task)
    return teams, emails, logins


def _create_campaigns(session: Session, now: datetime) -> dict[str, int]:
    today = now.astimezone(_LOCAL_TZ).date()
    ids: dict[str, int] = {}
    for spec in CAMPAIGNS:
        starts_on, ends_on = spec.window(today)
        campaign = campaigns_service.create_campaign(
            session=session,
            data=CampaignCreate(
                name=spec.name, channel=spec.channel, product_line=spec.product_line,
                topic=spec.topic, cost=Decimal(spec.cost), starts_on=starts_on, ends_on=ends_on,
            ),
            now=now,
        )
        ids[spec.name] = campaign.id
    return ids


def _load_pool(session: Session, pool: CompanyPool, now: datetime) -> int:
    with tempfile.TemporaryDirectory(prefix="leadflow-demo-") as tmp:
        path = Path(tmp) / "firmographics.csv"
        write_firmographics(path, pool)
        return load_firmographics(session=session, path=path, now=now)


@dataclass(slots=True)
class _Batch:
    """Records of one campaign and week, captured in one transaction at ``now``."""

    spec: CampaignSpec
    now: datetime
    records: list[IncomingRecord]


def _schedule(
    n: int, *, seed: int, pool: CompanyPool, now: datetime, rng: random.Random
) -> list[_Batch]:
    """Give every record a campaign (by weight) and a time inside the campaign's window,
    then cut chronological batches of one campaign and week."""
    weights = [c.weight for c in CAMPAIGNS]
    hours = list(range(24))
    local_now = now.astimezone(_LOCAL_TZ)
    today_start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    timed: dict[tuple[int, int], list[tuple[datetime, GeneratedLead]]] = defaultdict(list)
    offline = next(i for i, c in enumerate(CAMPAIGNS) if c.source == "file-import")
    leads: Iterable[tuple[int | None, GeneratedLead]] = [
        *((None, lead) for lead in generate_leads(n, seed=seed, companies=pool,
                                                  history_days=HISTORY_DAYS)),
        *((offline, lead) for lead in bad_rows(seed)),  # an event list has a few bad rows
    ]
    for forced, lead in leads:
        index = forced if forced is not None else rng.choices(range(len(CAMPAIGNS)), weights)[0]
        spec = CAMPAIGNS[index]
        day = spec.start_days_ago - rng.randrange(spec.days)  # days before today
        hour = rng.choices(hours, _HOUR_WEIGHTS)[0]
        at = today_start - timedelta(days=day) + timedelta(hours=hour,
                                                           seconds=rng.randrange(3600))
        if at > local_now:
            at = local_now - timedelta(seconds=rng.randrange(DAY_S // 4))
        at_utc = at.astimezone(now.tzinfo)
        timed[(index, (now - at_utc).days // 7)].append((at_utc, lead))
    batches: list[_Batch] = []
    for (index, _week), items in timed.items():
        items.sort(key=lambda item: item[0])
        for start in range(0, len(items), CHUNK_SIZE):
            chunk = items[start:start + CHUNK_SIZE]
            batches.append(_Batch(CAMPAIGNS[index], chunk[-1][0], _incoming(chunk)))
    batches.sort(key=lambda b: b.now)
    return batches


def _incoming(chunk: Sequence[tuple[datetime, GeneratedLead]]) -> list[IncomingRecord]:
    return [
        IncomingRecord(external_id=lead.external_id, record=lead.record, raw=lead.record,
                       received_at=at)
        for at, lead in chunk
    ]
