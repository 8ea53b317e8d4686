"""Users, teams, login and API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from leadflow.errors import Conflict, InvalidInput, NotAuthenticated
from leadflow.users import security
from leadflow.users.models import ApiToken, Role, Segment, Team, TeamKind, User


def create_team(
    *,
    session: Session,
    name: str,
    kind: TeamKind,
    now: datetime,
    segment: Segment | None = None,
    product_line: str | None = None,
    region: str | None = None,
) -> Team:
    """Create a team."""
    if session.scalar(select(Team.id).where(Team.name == name)):
        raise Conflict(f"team {name!r} already exists", field="name")
    team = Team(
        name=name, kind=kind, segment=segment, product_line=product_line, region=region,
        created_at=now,
    )
    session.add(team)
    session.flush()
    return team


def create_user(
    *,
    session: Session,
    email: str,
    name: str,
    role: Role,
    password: str,
    now: datetime,
    team_id: int | None = None,
    locale: str = "en",
) -> User:
    """Create a user with an argon2-hashed password."""
    email = email.strip().lower()
    if len(password) < 8:
        raise InvalidInput("password must be at least 8 characters", field="password")
    if session.scalar(select(User.id).where(User.email == email)):
        raise Conflict(f"user {email} already exists", field="email")
    user = User(
        email=email, name=name, role=Role(role), password_hash=security.hash_password(password),
        team_id=team_id, locale=locale, created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def authenticate(*, session: Session, email: str, password: str, now: datetime) -> User:
    """Return the active user with these credentials or raise ``NotAuthenticated``."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    ok = security.verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        raise NotAuthenticated("wrong email or password")
    user.last_login_at = now
    session.flush()
    return user


def issue_api_token(*, session: Session, user: User, name: str, now: datetime) -> str:
    """Create a token for ``user``; returns the plaintext, which is not stored."""
    token = security.new_api_token()
    session.add(
        ApiToken(
            name=name, token_digest=security.token_digest(token), prefix=token[:10],
            user_id=user.id, created_at=now,
        )
    )
    session.flush()
    return token


def user_for_token(*, session: Session, token: str) -> User | None:
    """The active user behind a non-revoked token, or ``None``."""
    row = session.execute(
        select(User, ApiToken)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_digest == security.token_digest(token))
        .where(ApiToken.revoked_at.is_(None))
    ).first()
    if row is None or not row[0].is_active:
        return None
    return row[0]


def revoke_api_token(*, session: Session, token_id: int, now: datetime) -> None:
    """Revoke a token so it stops working at once."""
    token = session.get(ApiToken, token_id)
    if token is not None and token.revoked_at is None:
        token.revoked_at = now
        session.flush()
