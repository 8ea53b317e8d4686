"""Leads, their touchpoints (one per captured record) and the activity timeline."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from leadflow.db import Base, JSONType


class LeadStatus(StrEnum):
    """Where a lead stands in the M2L flow."""

    NEW = "new"
    NURTURING = "nurturing"
    ASSIGNED = "assigned"
    WORKING = "working"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"
    CONVERTED = "converted"
    MERGED = "merged"


class ActivityKind(StrEnum):
    """Every state change and every touch on a lead's timeline."""

    CAPTURED = "captured"
    MERGED = "merged"
    MERGE_UNDONE = "merge_undone"
    UPDATED = "updated"
    ENRICHED = "enriched"
    CONFLICT = "conflict"
    NOTE = "note"
    ASSIGNED = "assigned"
    STATUS_CHANGED = "status_changed"
    # What the lead does: engagement, scored with decay (see scoring.rules).
    FORM_SUBMITTED = "form_submitted"
    EMAIL_OPENED = "email_opened"
    EMAIL_CLICKED = "email_clicked"
    CONTENT_READ = "content_read"
    WEB_VISIT = "web_visit"
    WEBINAR_ATTENDED = "webinar_attended"
    COMMUNITY_CLASS = "community_class"
    PAID_CONSULTATION = "paid_consultation"
    GIFT_CLAIMED = "gift_claimed"
    REPLIED = "replied"
    MEETING_BOOKED = "meeting_booked"
    EMAIL_BOUNCED = "email_bounced"
    UNSUBSCRIBED = "unsubscribed"
    NOT_INTERESTED = "not_interested"
    # What scoring concluded.
    GRADE_CHANGED = "grade_changed"
    MQL_REACHED = "mql_reached"
    GRADE_FLAGGED = "grade_flagged"
    # Ownership: routing, pools, SLAs (see routing).
    POOLED = "pooled"
    REJECTED = "rejected"
    RETURNED = "returned"
    RECYCLED = "recycled"
    RECYCLE_WARNED = "recycle_warned"
    CLAIMED = "claimed"
    TRANSFERRED = "transferred"
    SLA_BREACHED = "sla_breached"
    # What a rep does to reach the lead: a real touch stops the speed-to-lead clock.
    CALL_LOGGED = "call_logged"
    EMAIL_SENT = "email_sent"
    MESSAGE_SENT = "message_sent"
    MEETING_HELD = "meeting_held"
    # engagement engine
    ENROLLED = "enrolled"
    CADENCE_PAUSED = "cadence_paused"
    CADENCE_RESUMED = "cadence_resumed"
    CADENCE_ENDED = "cadence_ended"
    TASK_SKIPPED = "task_skipped"
    OUT_OF_OFFICE = "out_of_office"


# Activities a lead does itself (as opposed to what the system or a rep does to it).
ENGAGEMENT_KINDS: frozenset[ActivityKind] = frozenset(
    {
        ActivityKind.CAPTURED, ActivityKind.FORM_SUBMITTED, ActivityKind.EMAIL_OPENED,
        ActivityKind.EMAIL_CLICKED, ActivityKind.CONTENT_READ, ActivityKind.WEB_VISIT,
        ActivityKind.WEBINAR_ATTENDED, ActivityKind.COMMUNITY_CLASS,
        ActivityKind.PAID_CONSULTATION, ActivityKind.GIFT_CLAIMED, ActivityKind.REPLIED,
        ActivityKind.MEETING_BOOKED, ActivityKind.EMAIL_BOUNCED, ActivityKind.UNSUBSCRIBED,
        ActivityKind.NOT_INTERESTED,
    }
)


# A rep's real touches: the first one accepts the lead and each one is a follow-up.
TOUCH_KINDS: frozenset[ActivityKind] = frozenset(
    {ActivityKind.CALL_LOGGED, ActivityKind.EMAIL_SENT, ActivityKind.MESSAGE_SENT,
     ActivityKind.MEETING_HELD}
)


class Lead(Base):
    """One person who might buy."""

    __tablename__ = "lead"
    __table_args__ = (
        # Routers take due leads oldest first: (route_due_at, id) is the claim order.
        Index("ix_lead_route_due_at", "route_due_at", "id",
              sqlite_where=text("route_due_at IS NOT NULL"),
              postgresql_where=text("route_due_at IS NOT NULL")),
        # 撞单 checks look owned leads up by company; unowned (new) leads stay out of it,
        # so imports do not pay for this index.
        Index("ix_lead_company_key_owned", "company_key",
              sqlite_where=text("owner_id IS NOT NULL"),
              postgresql_where=text("owner_id IS NOT NULL")),
        Index("ix_lead_protected_until", "protected_until",
              sqlite_where=text("owner_id IS NOT NULL"),
              postgresql_where=text("owner_id IS NOT NULL")),
        # Live leads are counted as all leads less the merged ones: counting by status
        # reads every row, a partial index holds only the (few) merged leads.
        Index("ix_lead_merged", "id", sqlite_where=text("status = 'merged'"),
              postgresql_where=text("status = 'merged'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(120))
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    phone_raw: Mapped[str | None] = mapped_column(String(60))
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    wechat_id: Mapped[str | None] = mapped_column(String(64), index=True)
    title: Mapped[str | None] = mapped_column(String(120))
    company: Mapped[str | None] = mapped_column(String(200))
    company_key: Mapped[str | None] = mapped_column(String(200))
    industry: Mapped[str | None] = mapped_column(String(80))
    headcount: Mapped[int | None]
    region: Mapped[str | None] = mapped_column(String(80))
    province: Mapped[str | None] = mapped_column(String(80))
    city: Mapped[str | None] = mapped_column(String(80))
    address: Mapped[str | None] = mapped_column(String(300))
    postcode: Mapped[str | None] = mapped_column(String(16))
    product_interest: Mapped[str | None] = mapped_column(String(120))
    language: Mapped[str | None] = mapped_column(String(8))
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    consent: Mapped[bool | None]
    do_not_contact: Mapped[bool] = mapped_column(default=False)
    status: Mapped[LeadStatus] = mapped_column(String(16), default=LeadStatus.NEW)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"))
    source: Mapped[str | None] = mapped_column(String(40))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id"), index=True)
    # Blocking keys for fuzzy dedup: candidates are looked up by these, never by all pairs.
    key_name_company: Mapped[str | None] = mapped_column(String(240), index=True)
    key_name_place: Mapped[str | None] = mapped_column(String(240), index=True)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("lead.id"))
    # Routing state (see routing): a lead has an owner or sits in a pool once routed.
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("lead_pool.id"), index=True)
    # Set when the lead needs (re)routing: on arrival, on crossing the MQL line, after a
    # rejection or an SLA breach; routers pick due leads up and clear it.
    route_due_at: Mapped[datetime | None]
    # The clock every ownership change restarts, and the protection period (保护期) it opens.
    owned_at: Mapped[datetime | None]
    protected_until: Mapped[datetime | None]
    recycle_warned_at: Mapped[datetime | None]
    recycle_count: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    first_touch_at: Mapped[datetime | None]
    last_touch_at: Mapped[datetime | None]
    follow_up_on: Mapped[date | None]
    # Not indexed: lists order by id, which follows creation; every index costs imports.
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Touchpoint(Base):
    """One captured record (form post, file row, API call) in its source's identity."""

    __tablename__ = "touchpoint"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id"), index=True)
    # The lead this record first landed on; a merge moves ``lead_id``, undo moves it back.
    original_lead_id: Mapped[int] = mapped_column(ForeignKey("lead.id"))
    source: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(128))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id"), index=True)
    received_at: Mapped[datetime]
    import_job_id: Mapped[int | None] = mapped_column(ForeignKey("import_job.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Activity(Base):
    """One entry on a lead's timeline: who did what, when, and why."""

    __tablename__ = "activity"
    __table_args__ = (Index("ix_activity_lead_id_occurred_at", "lead_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Not a foreign key: checking one per row cost more than the insert (see
    # docs/decisions.md); leads are never deleted and writers have just read the lead.
    lead_id: Mapped[int]
    kind: Mapped[ActivityKind] = mapped_column(String(24))
    occurred_at: Mapped[datetime]
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    channel: Mapped[str | None] = mapped_column(String(24))
    summary: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # A measure scoring reads without parsing ``detail``: minutes read, amount paid.
    value: Mapped[float | None]
    # What it was about: the page visited, the email or webinar, the class.
    ref: Mapped[str | None] = mapped_column(String(300))


class ImportStatus(StrEnum):
    """Life of a file import."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ImportJob(Base):
    """A file import with its running counts; re-running it resumes without duplicates."""

    __tablename__ = "import_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255))
    stored_path: Mapped[str | None] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(String(40))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id"))
    status: Mapped[ImportStatus] = mapped_column(String(12), default=ImportStatus.QUEUED)
    rows_read: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    merged: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    total_rows: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class ImportReject(Base):
    """A row that could not be imported, with its row number and the reason."""

    __tablename__ = "import_reject"
    __table_args__ = (UniqueConstraint("job_id", "row_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("import_job.id"))
    row_number: Mapped[int]
    field: Mapped[str | None] = mapped_column(String(60))
    reason: Mapped[str] = mapped_column(String(300))
    raw: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class FormEndpoint(Base):
    """A public web form posting to ``/api/v1/forms/{form_key}``, signed with HMAC-SHA256.

    The signing secret is never stored: it is derived from the app secret and ``secret_nonce``
    (rotating the nonce rotates the secret).
    """

    __tablename__ = "form_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    form_key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(40))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id"))
    secret_nonce: Mapped[str] = mapped_column(String(64))
    field_mapping: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
