"""API shapes for campaigns."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadflow.campaigns.models import Channel


class CampaignCreate(BaseModel):
    """A new campaign; ``is_online`` defaults from the channel."""

    name: str = Field(min_length=1, max_length=200)
    channel: Channel
    is_online: bool | None = None
    product_line: str | None = Field(default=None, max_length=80)
    topic: str | None = Field(default=None, max_length=120)
    cost: Decimal = Field(default=Decimal("0"), ge=0, max_digits=14, decimal_places=2)
    currency: str = Field(default="CNY", pattern="^[A-Z]{3}$")
    starts_on: date | None = None
    ends_on: date | None = None

    @model_validator(mode="after")
    def _dates_in_order(self) -> CampaignCreate:
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


class CampaignRead(BaseModel):
    """A campaign as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    channel: Channel
    is_online: bool
    product_line: str | None
    topic: str | None
    cost: Decimal
    currency: str
    starts_on: date | None
    ends_on: date | None
