"""Public endpoints a lead's mail client or browser calls: open pixel, click redirect, page
beacon, unsubscribe. They carry an unguessable message token instead of a login."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
