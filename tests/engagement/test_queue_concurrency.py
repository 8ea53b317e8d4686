"""Many claimers at once on PostgreSQL: no task handed out twice.

Each of 4 reps works from 10 threads at once (tabs, retries, double clicks): every Next
that finds work claims a task nobody else holds, and the claimed set equals what was open.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime

import pytest
from sqlalchemy import Engine, select

from leadflow.cadences.models import Task
from leadflow.db import bulk_insert, is_sqlite, session_scope
from leadflow.leads.models import Lead
from leadflow.queue import service as queue_service
from leadflow.users import service as users_service
from leadflow.users.models import Role, TeamKind, User

REPS = 4
THREADS_PER_REP = 10
TASKS_PER_REP = 60


def test_concurrent_next_never_gives_one_task_twice(db: Engine, now: datetime) -> None:
    if is_sqlite(str(db.url)):
        pytest.skip("SQLite runs one writer at a time; the race is PostgreSQL's")
    with session_scope() as session:
        team = users_service.create_team(session=session, name="T", kind=TeamKind.SALES,
                                         now=now)
        reps = [users_service.create_user(
            session=session, email=f"q{i}@example.com", name=f"q{i}", role=Role.REP,
            password="correct-horse-battery", team_id=team.id, now=now) for i in range(REPS)]
        rep_ids = [r.id for r in reps]
        bulk_insert(session, Lead.__table__, [  # type: ignore[arg-type]
            {"name": f"L{i}", "status": "assigned", "owner_id": rep_ids[i % REPS], "tags": [],
             "custom_fields": {}, "do_not_contact": False, "recycle_count": 0,
             "created_at": now, "updated_at": now} for i in range(REPS * TASKS_PER_REP)])
        leads = session.execute(select(Lead.id, Lead.owner_id)).all()
        bulk_insert(session, Task.__table__, [  # type: ignore[arg-type]
            {"lead_id": lead, "owner_id": owner, "kind": "step", "channel": "call",
             "automatic": False, "status": "open", "due_at": now, "bucket": 3,
             "rank": float(lead % 7), "attempt_no": 1, "note": "", "skips": 0,
             "created_at": now} for lead, owner in leads])
    claims: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(REPS * THREADS_PER_REP)

    def work(rep_id: int) -> None:
        try:
            start.wait()
            while True:
                with session_scope() as session:
                    user = session.get(User, rep_id)
                    assert user is not None
                    card = queue_service.next_task(session=session, user=user, now=now)
                    if card is None:
                        return
                    # Done at once, so the next Next claims a fresh task.
                    session.execute(Task.__table__.update().where(Task.id == card.task_id)
                                    .values(status="done", done_at=now))
                with lock:
                    claims.append((card.task_id, rep_id))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(rep_id,)) for rep_id in rep_ids
               for _ in range(THREADS_PER_REP)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    per_task = Counter(task for task, _rep in claims)
    assert per_task and max(per_task.values()) == 1
    assert len(per_task) == REPS * TASKS_PER_REP
    with session_scope() as session:
        owners = dict(session.execute(select(Task.id, Task.owner_id)).all())
    assert all(owners[task] == rep for task, rep in claims)
