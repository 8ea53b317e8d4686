"""The one clock of the system.

Domain code never reads the wall clock: a request, job or command calls :func:`now` once at
its edge and passes the value down. Tests freeze or advance it with :func:`set_clock`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_source: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def now() -> datetime:
    """Current time in UTC (timezone-aware)."""
    return _source()


def set_clock(source: Callable[[], datetime] | None) -> None:
    """Replace the clock (``None`` restores the wall clock)."""
    global _source
    _source = source or (lambda: datetime.now(UTC))
