"""API shapes for users and teams."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from leadflow.users.models import Role


class UserCreate(BaseModel):
    """A new user."""

    email: EmailStr
    name: str = Field(min_length=1, max_length=120)
    role: Role
    password: str = Field(min_length=8, max_length=200)
    team_id: int | None = None
    locale: str = Field(default="en", pattern="^(en|zh)$")


class UserRead(BaseModel):
    """A user as the API shows it (never the hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    role: Role
    team_id: int | None
    locale: str
