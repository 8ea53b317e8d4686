"""Test fixtures: a real database (SQLite file by default, PostgreSQL when
``LEADFLOW_DATABASE_URL`` names one), migrated with Alembic once per run."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

_tmp = Path(tempfile.mkdtemp(prefix="leadflow-test-"))
os.environ.setdefault("LEADFLOW_DATABASE_URL", f"sqlite:///{_tmp / 'test.db'}")
os.environ["LEADFLOW_SECRET_KEY"] = "test-secret-key-not-for-production"
os.environ["LEADFLOW_UPLOAD_DIR"] = str(_tmp / "uploads")

from leadflow import clock, dbadmin  # noqa: E402
from leadflow.config import get_settings  # noqa: E402
from leadflow.db import Base, get_engine, is_sqlite, reset_engine_cache  # noqa: E402
from leadflow.users import service as users_service  # noqa: E402
from leadflow.users.models import Role, TeamKind, User  # noqa: E402

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
PASSWORD = "correct-horse-battery"


def _reset_postgres(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The migrated test database."""
    get_settings.cache_clear()
    reset_engine_cache()
    url = get_settings().database_url
    eng = get_engine()
    if not is_sqlite(url):
        _reset_postgres(eng)
    dbadmin.upgrade(url)
    yield eng
    reset_engine_cache()


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    """The database, emptied after the test (for tests that commit, like the app's)."""
    yield engine
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def session(db: Engine) -> Iterator[Session]:
    """A session on the test database; tables are emptied afterwards."""
    with Session(db, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def now() -> Iterator[datetime]:
    """A frozen clock."""
    clock.set_clock(lambda: NOW)
    yield NOW
    clock.set_clock(None)


@pytest.fixture
def make_user(session: Session):  # type: ignore[no-untyped-def]
    """Factory: a committed user with a role (and a team when asked)."""
    counter = iter(range(1, 10_000))

    def make(role: Role = Role.ADMIN, team: str | None = None, **kw: object) -> User:
        team_id = None
        if team:
            from sqlalchemy import select

            from leadflow.users.models import Team

            team_id = session.scalar(select(Team.id).where(Team.name == team))
            if team_id is None:
                team_id = users_service.create_team(
                    session=session, name=team, kind=TeamKind.SALES, now=NOW
                ).id
        n = next(counter)
        user = users_service.create_user(
            session=session, email=kw.pop("email", f"user{n}@example.com"),  # type: ignore[arg-type]
            name=str(kw.pop("name", f"User {n}")), role=role, password=PASSWORD,
            team_id=team_id, now=NOW,
        )
        session.commit()
        return user

    return make


@pytest.fixture
def client(db: Engine):  # type: ignore[no-untyped-def]
    """A test client of the app on the test database."""
    from fastapi.testclient import TestClient

    from leadflow.main import create_app

    with TestClient(create_app()) as c:
        yield c


@pytest.fixture
def login(client, make_user):  # type: ignore[no-untyped-def]
    """Factory: log a new user with ``role`` in through the login form."""

    def do(role: Role = Role.ADMIN, **kw: object) -> User:
        user = make_user(role, **kw)
        page = client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token, "login form carries a CSRF token"
        resp = client.post("/login", data={"email": user.email, "password": PASSWORD,
                                           "csrf": token.group(1)}, follow_redirects=False)
        assert resp.status_code == 303, resp.text
        return user

    return do


@pytest.fixture
def api_token(session: Session, make_user):  # type: ignore[no-untyped-def]
    """Factory: a bearer token header for a new user with ``role``."""

    def make(role: Role = Role.ADMIN, **kw: object) -> dict[str, str]:
        user = make_user(role, **kw)
        token = users_service.issue_api_token(session=session, user=user, name="t", now=NOW)
        session.commit()
        return {"Authorization": f"Bearer {token}"}

    return make
