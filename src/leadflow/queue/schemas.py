"""Pydantic shapes of the queue API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class TaskCardOut(BaseModel):
    """The next task, with its lead, why it is next, and what to say."""

    task_id: int
    lead_id: int
    lead_name: str | None
    company: str | None
    title: str | None
    phone: str | None
    email: str | None
    wechat_id: str | None
    grade: str | None
    probability: float | None
    channel: str
    kind: str
    due_at: datetime
    bucket: int
    reason: str
    attempt: int
    attempt_budget: int
    cadence: str | None
    step: int | None
    steps: int | None
    subject: str
    body: str
    script: str
    note: str
    dispositions: tuple[str, ...]
    history: list[dict[str, Any]]


class DispositionOut(BaseModel):
    """What recording a disposition did."""

    task_id: int
    why: str
    next_task_id: int | None
    exit_reason: str | None


class ListItemOut(BaseModel):
    task_id: int
    lead_id: int
    lead_name: str | None
    company: str | None
    grade: str | None
    channel: str
    due_at: datetime
    status: str
    note: str
