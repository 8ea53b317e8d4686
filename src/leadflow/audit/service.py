"""Writing audit entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from leadflow.audit.models import AuditEntry


def record(
    *,
    session: Session,
    actor_id: int | None,
    action: str,
    now: datetime,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one audit entry (flushed, not committed)."""
    entry = AuditEntry(
        actor_id=actor_id, action=action, target=target, detail=detail or {}, occurred_at=now
    )
    session.add(entry)
    session.flush()
    return entry
