"""API shapes for capture and for reading leads."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from leadflow.leads.capture import IncomingRecord, Outcome
from leadflow.leads.models import LeadStatus

_FIELDS = ("name", "given_name", "family_name", "phone", "email", "wechat_id", "title",
           "company", "industry", "headcount", "region", "province", "city", "address",
           "postcode", "product_interest", "notes", "consent", "language")


class LeadIn(BaseModel):
    """One record to capture. ``external_id`` is its identity in the source: sending the
    same (source, external_id) again changes nothing. Without it, a digest of the record
    is used, so an exact retry is still recognised."""

    model_config = ConfigDict(extra="forbid", str_max_length=500)

    external_id: str | None = Field(default=None, max_length=128)
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    phone: str | None = None
    email: str | None = None
    wechat_id: str | None = None
    title: str | None = None
    company: str | None = None
    industry: str | None = None
    headcount: int | str | None = None
    region: str | None = None
    province: str | None = None
    city: str | None = None
    address: str | None = None
    postcode: str | None = None
    product_interest: str | None = None
    notes: str | None = None
    consent: bool | str | None = None
    language: str | None = None
    tags: list[str] | str | None = None
    custom_fields: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    received_at: datetime | None = None

    def to_incoming(self) -> IncomingRecord:
        """The canonical record the capture pipeline takes."""
        record: dict[str, str] = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None and value != "":
                record[name] = str(value).lower() if isinstance(value, bool) else str(value)
        if self.tags:
            record["tags"] = ",".join(self.tags) if isinstance(self.tags, list) else self.tags
        for key, value in self.custom_fields.items():
            if value is not None:
                record[f"custom:{key}"] = str(value)
        raw = self.model_dump(mode="json", exclude_none=True)
        external_id = self.external_id or "sha256:" + hashlib.sha256(
            json.dumps(raw, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()[:40]
        return IncomingRecord(external_id=external_id, record=record, raw=raw,
                              received_at=self.received_at)


class LeadCaptureIn(LeadIn):
    """One record and where it came from."""

    source: str = Field(default="api", min_length=1, max_length=40, pattern=r"^[\w.\-:]+$")
    campaign: str | int | None = None


class LeadBatchIn(BaseModel):
    """Many records from one source (at most 10,000 a call)."""

    source: str = Field(default="api", min_length=1, max_length=40, pattern=r"^[\w.\-:]+$")
    campaign: str | int | None = None
    records: list[LeadIn] = Field(min_length=1, max_length=10_000)


class MatchOut(BaseModel):
    """Why a record merged into an existing lead."""

    keys: list[str]
    similarity: float


class CaptureOut(BaseModel):
    """What happened to one record."""

    external_id: str
    outcome: Outcome
    lead_id: int | None = None
    match: MatchOut | None = None
    field: str | None = None
    reason: str | None = None


class BatchOut(BaseModel):
    """Counts and per-record outcomes of a batch."""

    created: int
    merged: int
    skipped: int
    rejected: int
    results: list[CaptureOut]


class LeadRead(BaseModel):
    """A lead as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str | None
    phone: str | None
    email: str | None
    wechat_id: str | None
    title: str | None
    company: str | None
    industry: str | None
    headcount: int | None
    region: str | None
    province: str | None
    city: str | None
    address: str | None
    product_interest: str | None
    tags: list[str]
    custom_fields: dict[str, Any]
    consent: bool | None
    do_not_contact: bool
    status: LeadStatus
    owner_id: int | None
    source: str | None
    campaign_id: int | None
    # From the lead's stored score (scoring); absent until it is first scored.
    grade: str | None = None
    score: float | None = None
    merged_into_id: int | None
    created_at: datetime
    updated_at: datetime


class TouchpointRead(BaseModel):
    """A captured record of a lead."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    source: str
    external_id: str
    campaign_id: int | None
    received_at: datetime
    payload: dict[str, Any]


class TimelineRead(BaseModel):
    """One timeline entry."""

    at: datetime
    kind: str
    summary: str
    detail: dict[str, Any]


class LeadDetail(BaseModel):
    """A lead with its touchpoints and timeline."""

    lead: LeadRead
    touchpoints: list[TouchpointRead]
    timeline: list[TimelineRead]


class LeadListOut(BaseModel):
    """A page of leads."""

    items: list[LeadRead]
    total: int
    page: int
    per_page: int


class MergeIn(BaseModel):
    """Two leads to merge by hand."""

    lead_ids: tuple[int, int]


class MergeOut(BaseModel):
    """A merge."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    survivor_id: int
    merged_id: int
    keys: list[str]
    similarity: float | None
    merged_at: datetime
    undone_at: datetime | None
